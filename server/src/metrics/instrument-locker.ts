import type { Lock, RequestRelease } from '@tus/utils';
import type { UploadLocker } from '../uploads/upload-locker.js';
import type { Metrics } from './metrics.js';

/**
 * The same locker, with the time each lock() takes to acquire (or to give up) observed as
 * `tus_lock_wait_seconds`. Readers (waitUntilFree) take no lock and are not measured.
 */
export function instrumentLocker(locker: UploadLocker, metrics: Pick<Metrics, 'lockWait'>): UploadLocker {
  const measured = (inner: Lock): Lock => ({
    async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
      const stop = metrics.lockWait.startTimer();
      try {
        await inner.lock(signal, requestRelease);
        stop({ outcome: 'acquired' });
      } catch (error) {
        stop({ outcome: 'failed' });
        throw error;
      }
    },
    unlock: () => inner.unlock(),
  });
  return {
    newLock: (id) => measured(locker.newLock(id)),
    waitUntilFree: (id, signal) => locker.waitUntilFree(id, signal),
    close: () => locker.close(),
  };
}
