import { ERRORS, type Lock } from '@tus/utils';
import { afterEach, describe, expect, it } from 'vitest';
import type { UploadLocker } from './upload-locker.js';
import { withTimeout } from '../shared/with-timeout.js';

/**
 * The guarantees every UploadLocker gives, as a suite that runs against any implementation
 * (the in-process locker and RedisLocker). Not a test file itself: an implementation's test
 * file calls `lockerContract(name, backend)`.
 *
 * Every wait is bounded, so a broken locker fails with a message instead of hanging.
 */

export type LockerBackend = Readonly<{
  /**
   * A brand-new locker: for Redis a new instance on new connections, as a process just
   * started would have. Lockers opened on one backend share locks when `shared` is true
   * (instances of one deployment); in process they are independent.
   */
  open(options?: { acquireTimeoutMs?: number }): UploadLocker;
  /** Whether two lockers from `open()` share their locks (separate instances, one Redis). */
  shared: boolean;
  /** Closes what the backend opened and removes what it stored. */
  destroy(): Promise<void>;
}>;

const WAIT_MS = 5_000;
const never = () => new AbortController().signal;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` with a message naming what was awaited. */
const within = <T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> =>
  withTimeout(promise, ms, () => new Error(`timed out after ${ms} ms waiting for ${what}`));

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return !settled;
}

export function lockerContract(name: string, makeBackend: () => Promise<LockerBackend>): void {
  describe(`UploadLocker contract: ${name}`, () => {
    let backend: LockerBackend | undefined;
    const held: Lock[] = [];

    /** Two lockers that share locks: two instances when the backend can, else one locker twice. */
    async function pair(options?: { acquireTimeoutMs?: number }): Promise<[UploadLocker, UploadLocker]> {
      backend ??= await makeBackend();
      const a = backend.open(options);
      return [a, backend.shared ? backend.open(options) : a];
    }

    async function take(locker: UploadLocker, id: string, onRelease: () => void = () => undefined): Promise<Lock> {
      const lock = locker.newLock(id);
      await within(lock.lock(never(), onRelease), `lock ${id}`);
      held.push(lock);
      return lock;
    }

    afterEach(async () => {
      await Promise.all(held.splice(0).map((lock) => lock.unlock().catch(() => undefined)));
      await backend?.destroy();
      backend = undefined;
    });

    it('one holder at a time; a waiter gets the lock after unlock; other ids are independent', async () => {
      const [a, b] = await pair();
      const events: string[] = [];
      const lockA = await take(a, 'upload-1');
      events.push('a locked');
      const lockB = b.newLock('upload-1');
      const gotB = lockB.lock(never(), () => undefined).then(() => events.push('b locked'));
      expect(await pendingAfter(gotB, 150)).toBe(true);
      expect(events).toEqual(['a locked']);
      events.push('a unlocking');
      await lockA.unlock();
      await within(gotB, 'the waiter to get the lock');
      expect(events).toEqual(['a locked', 'a unlocking', 'b locked']);
      await lockB.unlock();
      const other = await take(b, 'upload-2');
      await other.unlock();
    });

    it('many contenders over two instances: the critical section is never shared', async () => {
      const [a, b] = await pair();
      let inside = 0;
      let maxInside = 0;
      let entered = 0;
      await within(
        Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const lock = (i % 2 ? a : b).newLock('shared');
            await lock.lock(AbortSignal.timeout(10_000), () => undefined);
            entered += 1;
            maxInside = Math.max(maxInside, ++inside);
            await sleep(5);
            inside -= 1;
            await lock.unlock();
          }),
        ),
        'ten contenders to get through',
        15_000,
      );
      expect(entered).toBe(10);
      expect(maxInside).toBe(1);
    });

    it('waiters get the lock in the order they came (one instance)', async () => {
      const [a] = await pair();
      const holder = await take(a, 'upload-1');
      const order: number[] = [];
      const waiters: Promise<void>[] = [];
      for (let i = 0; i < 5; i += 1) {
        const lock = a.newLock('upload-1');
        waiters.push(
          lock.lock(AbortSignal.timeout(WAIT_MS), () => undefined).then(async () => {
            order.push(i);
            await lock.unlock();
          }),
        );
        // Each one queued (and subscribed, for Redis) before the next comes.
        await sleep(40);
      }
      await holder.unlock();
      held.splice(0);
      await within(Promise.all(waiters), 'five waiters in turn');
      expect(order).toEqual([0, 1, 2, 3, 4]);
    });

    it('a waiter asks the holder, also on another instance, to release, through requestRelease', async () => {
      const [a, b] = await pair();
      let releaseRequests = 0;
      const lockA = a.newLock('upload-1');
      // What @tus/server does: the request is cancelled, then its handler unlocks.
      await lockA.lock(never(), () => {
        releaseRequests += 1;
        void lockA.unlock();
      });
      const started = performance.now();
      const lockB = b.newLock('upload-1');
      await within(lockB.lock(AbortSignal.timeout(WAIT_MS), () => undefined), 'the lock the holder was asked to release');
      expect(releaseRequests).toBeGreaterThanOrEqual(1);
      expect(performance.now() - started).toBeLessThan(2_000);
      await lockB.unlock();
    });

    it('a waiter gives up with ERR_LOCK_TIMEOUT when its signal aborts, or after the acquire timeout', async () => {
      const [a, b] = await pair();
      await take(a, 'upload-1'); // a holder that ignores release requests
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      await expect(within(b.newLock('upload-1').lock(controller.signal, () => undefined), 'the aborted waiter')).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
      const aborted = AbortSignal.abort();
      await expect(within(b.newLock('upload-1').lock(aborted, () => undefined), 'the waiter aborted before it came')).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);

      const [impatient] = await pair({ acquireTimeoutMs: 100 });
      const otherHolder = await take(impatient, 'upload-2');
      const started = performance.now();
      await expect(within(impatient.newLock('upload-2').lock(never(), () => undefined), 'the impatient waiter')).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT);
      expect(performance.now() - started).toBeGreaterThanOrEqual(90);
      // A waiter that gave up left nothing behind: the lock goes to the next one.
      await otherHolder.unlock();
      held.splice(held.indexOf(otherHolder), 1);
      await (await take(impatient, 'upload-2')).unlock();
    });

    it('waitUntilFree resolves at once when nobody holds the lock, and takes no lock', async () => {
      const [a] = await pair();
      const started = performance.now();
      await within(a.waitUntilFree('upload-1'), 'waitUntilFree on a free lock', 1_000);
      expect(performance.now() - started).toBeLessThan(500);
      const lock = await take(a, 'upload-1');
      await lock.unlock();
    });

    it('waitUntilFree asks the holder to let go and resolves at its unlock, never taking the lock', async () => {
      const [a, b] = await pair();
      let releaseRequests = 0;
      const holder = await take(a, 'upload-1', () => {
        releaseRequests += 1;
      });
      const reader = b.waitUntilFree('upload-1');
      expect(await pendingAfter(reader, 200)).toBe(true);
      expect(releaseRequests).toBeGreaterThanOrEqual(1);
      await holder.unlock();
      held.splice(0);
      await within(reader, 'the reader to wake at the unlock');
      // The reader did not take it.
      await (await take(b, 'upload-1')).unlock();
    });

    it('waitUntilFree resolves, never throws, when its signal aborts or the acquire timeout passes', async () => {
      const [a, b] = await pair({ acquireTimeoutMs: 200 });
      await take(a, 'upload-1'); // ignores release requests
      const controller = new AbortController();
      const aborted = b.waitUntilFree('upload-1', controller.signal);
      expect(await pendingAfter(aborted, 50)).toBe(true);
      controller.abort();
      await within(aborted, 'the aborted reader', 1_000);
      const started = performance.now();
      await within(b.waitUntilFree('upload-1'), 'the reader to give up after the acquire timeout', 2_000);
      expect(performance.now() - started).toBeGreaterThanOrEqual(150);
      await within(b.waitUntilFree('upload-1', AbortSignal.abort()), 'a reader aborted before it came', 1_000);
    });

    it('64 readers wait together and all wake at one unlock', async () => {
      const [a, b] = await pair();
      const holder = await take(a, 'upload-1');
      let woken = 0;
      const readers = Array.from({ length: 64 }, (_, i) => (i % 2 ? a : b).waitUntilFree('upload-1').then(() => (woken += 1)));
      await sleep(200);
      expect(woken).toBe(0);
      await holder.unlock();
      held.splice(0);
      await within(Promise.all(readers), 'all 64 readers to wake', 3_000);
      expect(woken).toBe(64);
    });

    it('waiting costs no CPU: 64 lock() waiters and 64 readers on a held lock for 500 ms', async () => {
      const [a, b] = await pair();
      const holder = await take(a, 'upload-1');
      const lockers = Array.from({ length: 64 }, (_, i) => (i % 2 ? a : b).newLock('upload-1'));
      const waiting = lockers.map((lock) =>
        lock.lock(AbortSignal.timeout(WAIT_MS), () => undefined).then(
          () => lock.unlock(),
          () => undefined,
        ),
      );
      const readers = Array.from({ length: 64 }, (_, i) => (i % 2 ? b : a).waitUntilFree('upload-1'));
      await sleep(100); // everybody queued (and subscribed)
      const before = process.cpuUsage();
      await sleep(500);
      const { user, system } = process.cpuUsage(before);
      // @tus/server's MemoryLocker, re-polling with setImmediate, spent 180-330 ms of it here; these about 1 ms.
      expect((user + system) / 1000).toBeLessThan(50);
      await holder.unlock();
      held.splice(0);
      await within(Promise.all([...waiting, ...readers]), 'every waiter and reader to get through', 15_000);
    });

    it('a brand-new locker under immediate load: lock cycles, contention and readers from the first moment never fail', async () => {
      backend ??= await makeBackend();
      const opened = backend;
      // Several fresh lockers at once, each loaded while its connections come up: at start-up
      // the Redis locker's subscriber connection failed its ready check this way (issue 9).
      const failures: unknown[] = [];
      let cycles = 0;
      const cycle = async (locker: UploadLocker, id: string, read: boolean) => {
        try {
          if (read) await locker.waitUntilFree(id);
          const lock = locker.newLock(id);
          await lock.lock(AbortSignal.timeout(5_000), () => undefined);
          await lock.unlock();
          cycles += 1;
        } catch (error) {
          failures.push(error);
        }
      };
      // Three rounds of six fresh lockers: on the old Redis locker a round failed four times in five.
      for (let round = 0; round < 3; round += 1) {
        const deadline = Date.now() + 300;
        await within(
          Promise.all(
            Array.from({ length: 6 }, async (_, instance) => {
              const locker = opened.open({ acquireTimeoutMs: 5_000 });
              const started: Promise<void>[] = [];
              // A request arrives on every turn of the event loop (not all in the first tick), so
              // some arrive exactly while the connections are being set up.
              for (let i = 0; i < 300 && Date.now() < deadline; i += 1) {
                // Most on uploads of their own; every fifth contends for a few ids, every tenth reads first.
                const id = i % 5 === 0 ? `shared-${round}-${instance}-${i % 3}` : `upload-${round}-${instance}-${i}`;
                started.push(cycle(locker, id, i % 10 === 0));
                await new Promise<void>((resolve) => setImmediate(resolve));
              }
              await Promise.all(started);
            }),
          ),
          'the start-up load to finish',
          15_000,
        );
      }
      expect(failures).toEqual([]);
      expect(cycles).toBeGreaterThan(0);
    });
  });
}
