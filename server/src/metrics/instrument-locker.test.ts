import { describe, expect, it } from 'vitest';
import { lockerContract } from '../uploads/locker.contract.js';
import { createMemoryLocker } from '../uploads/memory-locker.js';
import { instrumentLocker } from './instrument-locker.js';
import { createMetrics } from './metrics.js';
import { parseSamples, sampleValue } from './prometheus-text.js';

// The wrapper is still an UploadLocker in every respect.
lockerContract('in process, instrumented', async () => ({
  open: (options) => instrumentLocker(createMemoryLocker(options), createMetrics()),
  shared: false,
  destroy: async () => undefined,
}));

describe('instrumentLocker', () => {
  it('observes how long lock() waited, acquired or not', async () => {
    const metrics = createMetrics();
    const locker = instrumentLocker(createMemoryLocker({ acquireTimeoutMs: 50 }), metrics);
    // The holder lets go 30 ms after it is asked to...
    const holder = locker.newLock('u');
    await holder.lock(new AbortController().signal, () => void setTimeout(() => void holder.unlock(), 30));
    // ...so a second request waits that long...
    const waiter = locker.newLock('u');
    await waiter.lock(new AbortController().signal, () => undefined);
    // ...and a third gives up after the 50 ms acquire timeout.
    await expect(locker.newLock('u').lock(new AbortController().signal, () => undefined)).rejects.toBeDefined();
    await waiter.unlock();

    const samples = parseSamples(await metrics.registry.metrics());
    expect(sampleValue(samples, 'tus_lock_wait_seconds_count', { outcome: 'acquired' })).toBe(2);
    expect(sampleValue(samples, 'tus_lock_wait_seconds_count', { outcome: 'failed' })).toBe(1);
    expect(sampleValue(samples, 'tus_lock_wait_seconds_sum', { outcome: 'acquired' })).toBeGreaterThanOrEqual(0.025);
    expect(sampleValue(samples, 'tus_lock_wait_seconds_sum', { outcome: 'failed' })).toBeGreaterThanOrEqual(0.04);
  });
});
