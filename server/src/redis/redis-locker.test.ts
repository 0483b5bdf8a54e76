import { ERRORS } from '@tus/utils';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisLocker } from './redis-locker.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const never = () => new AbortController().signal;

describe.skipIf(!redisUrl)('RedisLocker', () => {
  const conns = connections();
  const lockers: RedisLocker[] = [];
  let prefix = '';

  /** A locker on its own connection: one per simulated server instance. */
  const instance = (options: Partial<ConstructorParameters<typeof RedisLocker>[0]> = {}) => {
    const locker = new RedisLocker({ redis: conns.connect(), prefix, ...options });
    lockers.push(locker);
    return locker;
  };

  afterEach(async () => {
    await Promise.all(lockers.splice(0).map((l) => l.close()));
    await deletePrefix(conns.connect(), prefix);
    await conns.closeAll();
  });

  it('two instances never hold one lock at once; the waiter gets it after unlock', async () => {
    prefix = testPrefix('lock');
    const a = instance();
    const b = instance();
    const events: string[] = [];
    const lockA = a.newLock('upload-1');
    await lockA.lock(never(), () => undefined);
    events.push('a locked');
    const lockB = b.newLock('upload-1');
    const gotB = lockB.lock(never(), () => undefined).then(() => events.push('b locked'));
    await sleep(150);
    expect(events).toEqual(['a locked']);
    events.push('a unlocking');
    await lockA.unlock();
    await gotB;
    expect(events).toEqual(['a locked', 'a unlocking', 'b locked']);
    await lockB.unlock();
    // Other ids are independent.
    const other = b.newLock('upload-2');
    await other.lock(never(), () => undefined);
    await other.unlock();
  });

  it('many contenders over two instances: the critical section is never shared', async () => {
    prefix = testPrefix('lock');
    const a = instance();
    const b = instance();
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const lock = (i % 2 ? a : b).newLock('shared');
        await lock.lock(AbortSignal.timeout(10_000), () => undefined);
        maxInside = Math.max(maxInside, ++inside);
        await sleep(5);
        inside -= 1;
        await lock.unlock();
      }),
    );
    expect(maxInside).toBe(1);
  });

  it('a waiter asks the holder on another instance to release, through requestRelease', async () => {
    prefix = testPrefix('lock');
    const a = instance();
    const b = instance();
    const lockA = a.newLock('upload-1');
    let releaseRequests = 0;
    // What @tus/server does: the request is cancelled, then its handler unlocks.
    await lockA.lock(never(), () => {
      releaseRequests += 1;
      void lockA.unlock();
    });
    const lockB = b.newLock('upload-1');
    const started = performance.now();
    await lockB.lock(AbortSignal.timeout(5_000), () => undefined);
    expect(releaseRequests).toBeGreaterThanOrEqual(1);
    expect(performance.now() - started).toBeLessThan(2_000);
    await lockB.unlock();
  });

  it('a waiter gives up with ERR_LOCK_TIMEOUT when its signal aborts', async () => {
    prefix = testPrefix('lock');
    const a = instance();
    const b = instance();
    const lockA = a.newLock('upload-1');
    await lockA.lock(never(), () => undefined); // a holder that ignores release requests
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await expect(b.newLock('upload-1').lock(controller.signal, () => undefined)).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    // ... and with the locker's own bound.
    const impatient = instance({ acquireTimeoutMs: 100 });
    await expect(impatient.newLock('upload-1').lock(never(), () => undefined)).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await lockA.unlock();
  });

  it("a held lock outlives its TTL while refreshed; a dead holder's lock expires", async () => {
    prefix = testPrefix('lock');
    const redisA = conns.connect();
    const a = new RedisLocker({ redis: redisA, prefix, ttlMs: 200 });
    lockers.push(a);
    const b = instance({ ttlMs: 200 });
    const lockA = a.newLock('upload-1');
    await lockA.lock(never(), () => undefined);
    // Refreshed: still held after several TTLs.
    await expect(b.newLock('upload-1').lock(AbortSignal.timeout(600), () => undefined)).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    // A "dies": its connection is gone, so it refreshes no more and never unlocks.
    redisA.disconnect();
    const lockB = b.newLock('upload-1');
    const started = performance.now();
    await lockB.lock(AbortSignal.timeout(3_000), () => undefined);
    expect(performance.now() - started).toBeLessThan(1_500);
    await lockB.unlock();
  });

  it('unlock by a non-holder is ignored, also by a holder whose lock expired and was taken', async () => {
    prefix = testPrefix('lock');
    const a = instance();
    const b = instance({ ttlMs: 100, refreshMs: 50 });
    const holder = a.newLock('upload-1');
    await holder.lock(never(), () => undefined);
    await b.newLock('upload-1').unlock(); // never locked
    await expect(b.newLock('upload-1').lock(AbortSignal.timeout(200), () => undefined)).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await holder.unlock();
    await holder.unlock(); // twice: harmless

    // B's lock expires behind its back (simulated by deleting it), A takes it; B's unlock leaves A's lock alone.
    const lockB = b.newLock('upload-2');
    let bAskedToStop = false;
    await lockB.lock(never(), () => {
      bAskedToStop = true;
    });
    await conns.connect().del(`${prefix}upload-2`);
    const lockA = a.newLock('upload-2');
    await lockA.lock(AbortSignal.timeout(2_000), () => undefined);
    await sleep(120); // B's next refresh notices
    expect(bAskedToStop).toBe(true);
    await lockB.unlock();
    expect(await conns.connect().exists(`${prefix}upload-2`)).toBe(1);
    await expect(b.newLock('upload-2').lock(AbortSignal.timeout(200), () => undefined)).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
    await lockA.unlock();
  });
});
