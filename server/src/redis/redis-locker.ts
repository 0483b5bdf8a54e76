import { randomBytes } from 'node:crypto';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export type RedisLockerOptions = Readonly<{
  /** Connection for commands. The locker never closes it. */
  redis: Redis;
  /** Prefix of every key and channel (default `tus:lock:`). */
  prefix?: string;
  /** Lifetime of a lock that is not refreshed: how long a dead instance's lock outlives it. */
  ttlMs?: number;
  /** How often the holder refreshes the TTL (default a third of it). */
  refreshMs?: number;
  /** How long `lock()` waits at most, besides its abort signal (default 30 s, like MemoryLocker). */
  acquireTimeoutMs?: number;
  logger?: Logger;
}>;

/** Deletes the key only if it still holds our token. */
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
/** Extends the TTL only if the key still holds our token. */
const REFRESH = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * A @tus/utils Locker over Redis, for several server instances sharing uploads.
 *
 * - A lock is `SET <prefix><id> <token> NX PX ttl`; the holder refreshes the TTL every
 *   `refreshMs`, so the lock of an instance that died expires after at most `ttlMs`.
 * - A request that finds the lock taken PUBLISHes on `<prefix>release:<id>` and retries with
 *   a growing, jittered delay until it gets the lock, its signal aborts, or `acquireTimeoutMs`
 *   passes (then `ERRORS.ERR_LOCK_TIMEOUT`). The holder, subscribed to that channel, gets its
 *   `requestRelease` callback called: that is how @tus/server ends an older PATCH so a client
 *   reconnecting through another instance takes over promptly. Waiters publish on every
 *   retry, so a request made before the holder finished subscribing is not lost.
 * - `unlock()` deletes the key only if it still holds this lock's token (Lua), so a holder
 *   whose lock expired cannot release somebody else's.
 * - If a refresh finds the lock gone (it expired, e.g. after a long pause), the holder's
 *   `requestRelease` is called too: it no longer has exclusive access.
 *
 * Release requests need one extra connection (a `duplicate()` of `redis`, made on first use,
 * in subscriber mode); `close()` ends it.
 */
export class RedisLocker implements Locker {
  readonly redis: Redis;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly refreshMs: number;
  readonly acquireTimeoutMs: number;
  readonly logger: Logger | undefined;
  private subscriber: Redis | undefined;
  /** Channel → the release callbacks of locks this process holds. */
  private readonly holders = new Map<string, Set<() => void>>();

  constructor(options: RedisLockerOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix ?? 'tus:lock:';
    this.ttlMs = options.ttlMs ?? 30_000;
    this.refreshMs = options.refreshMs ?? Math.max(10, Math.floor(this.ttlMs / 3));
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 30_000;
    this.logger = options.logger;
    if (this.refreshMs >= this.ttlMs) throw new Error('RedisLocker: refreshMs must be shorter than ttlMs');
  }

  newLock(id: string): Lock {
    return new RedisLock(this, id);
  }

  /** Ends the subscriber connection (the command connection is the caller's). */
  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.holders.clear();
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
  }

  lockKey(id: string): string {
    return `${this.prefix}${id}`;
  }

  releaseChannel(id: string): string {
    return `${this.prefix}release:${id}`;
  }

  /** @internal Registers a holder's release callback; resolves once the channel is subscribed. */
  async listen(channel: string, onRelease: () => void): Promise<() => Promise<void>> {
    if (!this.subscriber) {
      const subscriber = this.redis.duplicate();
      subscriber.on('message', (ch: string) => this.holders.get(ch)?.forEach((release) => release()));
      subscriber.on('error', (error: unknown) => this.logger?.warn({ err: error }, 'lock subscriber connection error'));
      this.subscriber = subscriber;
    }
    const subscriber = this.subscriber;
    let set = this.holders.get(channel);
    if (!set) {
      set = new Set();
      this.holders.set(channel, set);
    }
    set.add(onRelease);
    await subscriber.subscribe(channel);
    return async () => {
      const current = this.holders.get(channel);
      current?.delete(onRelease);
      if (current?.size === 0) {
        this.holders.delete(channel);
        if (this.subscriber === subscriber) await subscriber.unsubscribe(channel).catch(() => undefined);
      }
    };
  }
}

class RedisLock implements Lock {
  private token: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private stopListening: (() => Promise<void>) | undefined;

  constructor(
    private readonly locker: RedisLocker,
    private readonly id: string,
  ) {}

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    if (this.token) throw new Error(`lock ${this.id} is already held by this Lock`);
    const { redis, ttlMs, acquireTimeoutMs } = this.locker;
    const key = this.locker.lockKey(this.id);
    const token = randomBytes(16).toString('hex');
    const deadline = Date.now() + acquireTimeoutMs;
    const stop = AbortSignal.any([signal, AbortSignal.timeout(acquireTimeoutMs)]);

    // Bounded: a round every 5-100 ms until the deadline, and at most this many rounds.
    const maxRounds = Math.ceil(acquireTimeoutMs / 5) + 1;
    for (let round = 0; round < maxRounds && !stop.aborted && Date.now() <= deadline; round += 1) {
      const acquired = await redis.set(key, token, 'PX', ttlMs, 'NX');
      if (acquired === 'OK') {
        this.token = token;
        await this.hold(key, token, requestRelease);
        return;
      }
      // Ask the holder (on whichever instance) to let go; repeated each round on purpose.
      await redis.publish(this.locker.releaseChannel(this.id), token);
      const delay = Math.min(100, 5 * 2 ** Math.min(round, 5));
      await sleep(Math.round(delay * (0.5 + Math.random())), stop);
    }
    throw ERRORS.ERR_LOCK_TIMEOUT;
  }

  /** Subscribes to release requests and starts refreshing the TTL. */
  private async hold(key: string, token: string, requestRelease: RequestRelease): Promise<void> {
    const { redis, ttlMs, refreshMs, logger } = this.locker;
    let released = false;
    const release = () => {
      if (released || this.token !== token) return;
      released = true;
      Promise.resolve()
        .then(requestRelease)
        .catch((error: unknown) => logger?.warn({ err: error, upload: this.id }, 'lock release callback failed'))
        .finally(() => {
          released = false;
        });
    };
    this.refreshTimer = setInterval(() => {
      redis.eval(REFRESH, 1, key, token, String(ttlMs)).then(
        (kept) => {
          if (kept === 0 && this.token === token) {
            logger?.warn({ upload: this.id }, 'upload lock expired while held; asking the request to stop');
            release();
          }
        },
        (error: unknown) => logger?.warn({ err: error, upload: this.id }, 'could not refresh an upload lock'),
      );
    }, refreshMs);
    this.refreshTimer.unref();
    try {
      this.stopListening = await this.locker.listen(this.locker.releaseChannel(this.id), release);
    } catch (error) {
      await this.unlock().catch(() => undefined);
      throw error;
    }
  }

  async unlock(): Promise<void> {
    const token = this.token;
    this.token = undefined;
    clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
    const stopListening = this.stopListening;
    this.stopListening = undefined;
    await stopListening?.();
    // Not holding it (never locked, already unlocked, or expired): nothing of ours to delete.
    if (!token) return;
    await this.locker.redis.eval(UNLOCK, 1, this.locker.lockKey(this.id), token);
  }
}
