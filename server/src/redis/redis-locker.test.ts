import { createServer, type Server } from 'node:net';
import { ERRORS } from '@tus/utils';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { createTestApp } from '../testing/create-test-app.js';
import { TUS } from '../testing/http-test-helpers.js';
import { lockerContract } from '../uploads/locker.contract.js';
import { RedisLocker } from './redis-locker.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const never = () => new AbortController().signal;

describe.skipIf(!redisUrl)('RedisLocker', () => {
  // Each open() is a new instance on a new connection: what a process that just started has.
  lockerContract('Redis', async () => {
    const conns = connections();
    const prefix = testPrefix('lock-contract');
    const opened: RedisLocker[] = [];
    return {
      open(options) {
        const locker = new RedisLocker({ redis: conns.connect(), prefix, ...options });
        opened.push(locker);
        return locker;
      },
      shared: true,
      async destroy() {
        await Promise.all(opened.splice(0).map((l) => l.close()));
        await deletePrefix(conns.connect(), prefix);
        await conns.closeAll();
      },
    };
  });
});

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

  it('waiters wake at the unlock message, long before their poll', async () => {
    prefix = testPrefix('lock');
    const a = instance({ pollMs: 10_000 });
    const b = instance({ pollMs: 10_000 });
    const holder = a.newLock('upload-1');
    await holder.lock(never(), () => undefined);
    const waiter = b.newLock('upload-1');
    const gotIt = waiter.lock(AbortSignal.timeout(5_000), () => undefined);
    const reader = a.waitUntilFree('upload-1');
    await sleep(200); // subscribed by now
    const unlocked = performance.now();
    await holder.unlock();
    await Promise.all([gotIt, reader]);
    expect(performance.now() - unlocked).toBeLessThan(1_000);
    await waiter.unlock();
  });

  it("a holder that dies without unlocking is noticed by polling once its key expires", async () => {
    prefix = testPrefix('lock');
    const redisA = conns.connect();
    const a = new RedisLocker({ redis: redisA, prefix, ttlMs: 300, pollMs: 50 });
    lockers.push(a);
    const b = instance({ ttlMs: 300, pollMs: 50 });
    await a.newLock('upload-1').lock(never(), () => undefined);
    const reader = b.waitUntilFree('upload-1');
    const waiter = b.newLock('upload-1');
    const gotIt = waiter.lock(AbortSignal.timeout(5_000), () => undefined);
    await sleep(100);
    redisA.disconnect(); // no unlock message will ever come
    const started = performance.now();
    await Promise.all([gotIt, reader]);
    expect(performance.now() - started).toBeLessThan(1_500);
    await waiter.unlock();
  });

  describe('with Redis gone', () => {
    let blackHole: Server | undefined;
    afterEach(async () => {
      await new Promise((resolve) => blackHole?.close(resolve) ?? resolve(undefined));
      blackHole = undefined;
    });

    /** A locker whose Redis is a port that accepts and drops every connection: Redis down, or restarting. */
    async function lockerWithoutRedis(): Promise<{ redis: Redis; locker: RedisLocker }> {
      prefix = testPrefix('lock');
      blackHole = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => blackHole!.listen(0, '127.0.0.1', resolve));
      const { port } = blackHole.address() as { port: number };
      const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 20 });
      redis.on('error', () => undefined);
      return { redis, locker: new RedisLocker({ redis, prefix, acquireTimeoutMs: 1_000 }) };
    }

    it('lock() and waitUntilFree fail with a retryable 503; unlock does not throw', async () => {
      const { redis, locker } = await lockerWithoutRedis();
      try {
        const failure = await locker
          .newLock('upload-1')
          .lock(AbortSignal.timeout(5_000), () => undefined)
          .then(
            () => undefined,
            (error: unknown) => error,
          );
        expect(failure).toBeInstanceOf(HttpError);
        expect((failure as HttpError).status).toBe(503);
        expect((failure as HttpError).headers['Retry-After']).toBeDefined();
        // A reader cannot ask a writer to let go either: its answer could miss stored bytes.
        await expect(locker.waitUntilFree('upload-1')).rejects.toMatchObject({ status: 503 });
        await locker.newLock('upload-1').unlock();
      } finally {
        await locker.close();
        redis.disconnect();
      }
    });

    it('through the app, a request whose upload lock cannot be taken answers 503 with Retry-After, never 500', async () => {
      const { redis, locker } = await lockerWithoutRedis();
      const t = await createTestApp({}, { locker });
      try {
        // @tus/server takes the lock for a creation: the failure comes back through onResponseError.
        const created = await t.app.request('http://localhost/files', { method: 'POST', headers: { Host: 'localhost', ...TUS, 'Upload-Length': '10' } });
        expect(created.status).toBe(503);
        expect(await created.text()).toMatch(/^ERR_SERVICE_UNAVAILABLE: /);
        expect(created.headers.get('retry-after')).toBeTruthy();
      } finally {
        await t.cleanup();
        await locker.close();
        redis.disconnect();
      }
    });
  });
});
