import { randomBytes } from 'node:crypto';
import { ERRORS, type Lock, type RequestRelease } from '@tus/utils';
import type { Redis } from 'ioredis';
import { serviceUnavailable } from '../errors.js';
import type { Logger } from '../logger.js';
import type { UploadLocker } from '../uploads/upload-locker.js';

export type RedisLockerOptions = Readonly<{
  /** Connection for commands. The locker never closes it. */
  redis: Redis;
  /** Prefix of every key and channel. @default 'tus:lock:' */
  prefix?: string;
  /** Lifetime of a lock that is not refreshed: how long a dead instance's lock outlives it. @default 30_000 */
  ttlMs?: number;
  /** How often the holder refreshes the TTL. @default a third of ttlMs */
  refreshMs?: number;
  /** How long `lock()` waits at most, besides its abort signal, and `waitUntilFree()` at most. @default 30_000, like MemoryLocker */
  acquireTimeoutMs?: number;
  /**
   * How often a waiter looks at the lock itself, besides the unlock message: notices a lost
   * message, or a holder that died and whose key expired, and repeats the release request.
   * @default a quarter of ttlMs, between 10 ms and 1 s
   */
  pollMs?: number;
  logger?: Logger;
}>;

/** Deletes the key only if it still holds our token, and tells the waiters (`ARGV[2]` is the unlocked channel). */
const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]); redis.call('PUBLISH', ARGV[2], '1'); return 1 else return 0 end`;
/** Extends the TTL only if the key still holds our token. */
const REFRESH = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;

/** Why a waiter woke: the holder unlocked, its subscription just started, or its poll tick. */
type WakeReason = 'unlocked' | 'subscribed' | 'poll';

/** A waiter's view of one upload's lock, shared by every waiter of this process for that id. */
type Listener = Readonly<{ deliver: (reason: WakeReason) => void; takesLock: boolean }>;

/** This process's waiters for one upload's lock: one subscription and one poll timer, however many wait. */
type Watch = { listeners: Set<Listener>; timer: NodeJS.Timeout; subscribed: boolean };

/** A Redis glob pattern that matches `text` literally. */
const globEscape = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/** A Redis failure met by a request: the client gets a 503 and retries; the cause is kept for the log. */
const unavailable = (cause: unknown) => Object.assign(serviceUnavailable(), { cause });

/**
 * An UploadLocker over Redis, for several server instances sharing uploads.
 *
 * - A lock is `SET <prefix><id> <token> NX PX ttl`; the holder refreshes the TTL every
 *   `refreshMs`, so the lock of an instance that died expires after at most `ttlMs`.
 * - `unlock()` deletes the key only if it still holds this lock's token (Lua), so a holder
 *   whose lock expired cannot release somebody else's, and in the same script PUBLISHes on
 *   `<prefix>unlocked:<id>`.
 * - A request that finds the lock taken subscribes to `<prefix>unlocked:<id>` (one
 *   subscription per id and process, however many wait) and PUBLISHes on
 *   `<prefix>release:<id>`; the holder, on whichever instance, gets its `requestRelease`
 *   called: that is how @tus/server ends an older PATCH so a client reconnecting through
 *   another instance takes over promptly. Waiters sleep until the unlock message; every
 *   `pollMs` they look anyway and ask again, so a lost message or a dead holder whose key
 *   expired costs at most one poll. After `acquireTimeoutMs` (or its signal) a waiter gives
 *   up with `ERRORS.ERR_LOCK_TIMEOUT`. Readers (`waitUntilFree`) wait the same way without
 *   taking the lock.
 * - If a refresh finds the lock gone (it expired, e.g. after a long pause), the holder's
 *   `requestRelease` is called too: it no longer has exclusive access.
 *
 * Pub/sub needs one more connection, a `duplicate()` of `redis` made here, at once, and
 * subscribed to `<prefix>release:*` whenever it becomes ready; `close()` ends it. It runs
 * without ioredis's ready check: that check sends INFO once connected, and a SUBSCRIBE
 * written in between (ioredis lets commands flagged "loading" through before ready) put
 * the connection in subscriber mode first, so INFO failed, the connection was torn down,
 * and locks taken during start-up under load failed with it. A subscriber connection has
 * nothing to gain from the check (it serves no data), so it is off.
 */
export class RedisLocker implements UploadLocker {
  readonly redis: Redis;
  readonly prefix: string;
  readonly ttlMs: number;
  readonly refreshMs: number;
  readonly acquireTimeoutMs: number;
  readonly pollMs: number;
  readonly logger: Logger | undefined;
  private readonly subscriber: Redis;
  /** Upload id → the release callbacks of locks this process holds. */
  private readonly holders = new Map<string, Set<() => void>>();
  /** Upload id → this process's waiters for it. */
  private readonly watches = new Map<string, Watch>();
  /** Refresh timers of the locks this process holds, stopped by close(). */
  readonly refreshTimers = new Set<NodeJS.Timeout>();
  /** What ends each wait in progress; close() calls them all. */
  private readonly stoppers = new Set<() => void>();

  constructor(options: RedisLockerOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix ?? 'tus:lock:';
    this.ttlMs = options.ttlMs ?? 30_000;
    this.refreshMs = options.refreshMs ?? Math.max(10, Math.floor(this.ttlMs / 3));
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 30_000;
    this.pollMs = options.pollMs ?? Math.min(1_000, Math.max(10, Math.floor(this.ttlMs / 4)));
    this.logger = options.logger;
    if (this.refreshMs >= this.ttlMs) throw new Error('RedisLocker: refreshMs must be shorter than ttlMs');

    const releasePrefix = this.releaseChannel('');
    const unlockedPrefix = this.unlockedChannel('');
    this.subscriber = this.redis.duplicate({ enableReadyCheck: false, lazyConnect: false });
    this.subscriber.on('error', (error: unknown) => this.logger?.warn({ err: error }, 'lock subscriber connection error'));
    // On every (re)connection: ioredis re-subscribes what it had, but not a subscription whose first attempt failed.
    this.subscriber.on('ready', () => {
      this.subscriber.psubscribe(`${globEscape(releasePrefix)}*`).catch((error: unknown) => this.logger?.warn({ err: error }, 'could not subscribe to lock release requests'));
    });
    this.subscriber.on('pmessage', (_pattern: string, channel: string) => {
      if (channel.startsWith(releasePrefix)) this.holders.get(channel.slice(releasePrefix.length))?.forEach((release) => release());
    });
    this.subscriber.on('message', (channel: string) => {
      if (channel.startsWith(unlockedPrefix)) this.wake(channel.slice(unlockedPrefix.length), 'unlocked');
    });
  }

  newLock(id: string): Lock {
    return new RedisLock(this, id);
  }

  /**
   * Resolves once `id` is not locked, `signal` aborts, or `acquireTimeoutMs` passes; asks
   * the holder to let go. Never throws: a Redis failure ends the wait (the caller reads anyway).
   */
  async waitUntilFree(id: string, signal?: AbortSignal): Promise<void> {
    const key = this.lockKey(id);
    // Redis not answering fails the read (503): without it no writer can be asked to let go,
    // and the offset may be short of bytes another instance is storing.
    const seen = await this.redis.get(key).catch((error: unknown) => {
      throw unavailable(error);
    });
    if (seen === null || signal?.aborted) return;
    const waiting = this.waiter(id, signal, false);
    try {
      await this.askToRelease(id);
      for (let round = 0; round < this.maxRounds(); round += 1) {
        const reason = await waiting.next();
        if (reason === 'stop' || reason === 'unlocked') return;
        // Another token means it was released (and taken again) in between.
        const now = await this.redis.get(key).catch(() => null);
        if (now !== seen) return;
        if (reason === 'poll') await this.askToRelease(id);
      }
    } finally {
      waiting.stop(false);
    }
  }

  /** Ends the subscriber connection and every wait (the command connection is the caller's). */
  async close(): Promise<void> {
    for (const stop of [...this.stoppers]) stop();
    for (const timer of this.refreshTimers) clearInterval(timer);
    this.refreshTimers.clear();
    this.holders.clear();
    // Not quit(): it waits for a connection that may never come back. A subscriber has nothing to flush.
    this.subscriber.disconnect();
  }

  lockKey(id: string): string {
    return `${this.prefix}${id}`;
  }

  releaseChannel(id: string): string {
    return `${this.prefix}release:${id}`;
  }

  unlockedChannel(id: string): string {
    return `${this.prefix}unlocked:${id}`;
  }

  /** @internal Bounds a wait loop in rounds too (each round sleeps until a wake). */
  maxRounds(): number {
    return 4 * Math.ceil(this.acquireTimeoutMs / this.pollMs) + 100;
  }

  /** @internal Asks the holder of `id`, on whichever instance, to let go. Best effort. */
  async askToRelease(id: string): Promise<void> {
    await this.redis.publish(this.releaseChannel(id), '1').catch((error: unknown) => this.logger?.warn({ err: error, uploadId: id }, 'could not ask a lock holder to release'));
  }

  /** @internal Registers a holder's release callback; returns its removal. */
  hold(id: string, onRelease: () => void): () => void {
    let set = this.holders.get(id);
    if (!set) {
      set = new Set();
      this.holders.set(id, set);
    }
    set.add(onRelease);
    return () => {
      const current = this.holders.get(id);
      current?.delete(onRelease);
      if (current?.size === 0) this.holders.delete(id);
    };
  }

  /**
   * @internal One waiter on `id`: `next()` resolves with why it should look again, or
   * 'stop' once `signal` aborts, the acquire timeout passes or the locker closes.
   */
  waiter(id: string, signal: AbortSignal | undefined, takesLock: boolean): { next(): Promise<WakeReason | 'stop'>; othersWaiting(): boolean; stop(gaveUp: boolean): void } {
    // A timer and a listener rather than AbortSignal.any: composite signals on a long-lived one pile up on Node 20.
    let stopped = signal?.aborted === true;
    let pending: WakeReason | 'stop' | undefined;
    let resolveNext: ((reason: WakeReason | 'stop') => void) | undefined;
    const deliver = (reason: WakeReason | 'stop') => {
      // An unlock outranks a poll tick that has not been consumed yet.
      if (pending !== 'stop' && pending !== 'unlocked') pending = reason;
      if (resolveNext) {
        const resolve = resolveNext;
        resolveNext = undefined;
        resolve(pending);
        pending = undefined;
      }
    };
    const onStop = () => {
      stopped = true;
      deliver('stop');
    };
    const timer = setTimeout(onStop, this.acquireTimeoutMs);
    signal?.addEventListener('abort', onStop, { once: true });
    this.stoppers.add(onStop);
    const listener: Listener = { deliver, takesLock };
    const unwatch = this.watch(id, listener);
    const stoppers = this.stoppers;
    const watches = this.watches;
    return {
      next() {
        if (stopped) return Promise.resolve('stop');
        if (pending) {
          const reason = pending;
          pending = undefined;
          return Promise.resolve(reason);
        }
        return new Promise((resolve) => {
          resolveNext = resolve;
        });
      },
      othersWaiting() {
        for (const other of watches.get(id)?.listeners ?? []) if (other !== listener && other.takesLock) return true;
        return false;
      },
      /** `gaveUp`: a lock() waiter leaving without the lock passes an unlock it may have taken on to the next. */
      stop(gaveUp: boolean) {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onStop);
        stoppers.delete(onStop);
        unwatch();
        if (!gaveUp || !takesLock) return;
        for (const other of watches.get(id)?.listeners ?? []) {
          if (!other.takesLock) continue;
          other.deliver('subscribed');
          break;
        }
      },
    };
  }

  /** Adds a listener to `id`'s watch, subscribing and starting its poll for the first one. */
  private watch(id: string, listener: Listener): () => void {
    let watch = this.watches.get(id);
    if (!watch) {
      const timer = setInterval(() => this.wake(id, 'poll'), this.pollMs);
      timer.unref();
      const created: Watch = { listeners: new Set(), timer, subscribed: false };
      watch = created;
      this.watches.set(id, created);
      this.subscriber.subscribe(this.unlockedChannel(id)).then(
        () => {
          if (this.watches.get(id) !== created) return;
          created.subscribed = true;
          // An unlock between a waiter's last look and this subscription sent us nothing: look again.
          this.wake(id, 'subscribed');
        },
        (error: unknown) => this.logger?.warn({ err: error, uploadId: id }, 'could not subscribe to unlocks; waiting by polling'),
      );
    }
    const { listeners } = watch;
    listeners.add(listener);
    // Same for a waiter joining a live subscription: an unlock may have come before it joined.
    if (watch.subscribed) listener.deliver('subscribed');
    return () => {
      listeners.delete(listener);
      const current = this.watches.get(id);
      if (listeners.size > 0 || current?.listeners !== listeners) return;
      clearInterval(current.timer);
      this.watches.delete(id);
      this.subscriber.unsubscribe(this.unlockedChannel(id)).catch(() => undefined);
    };
  }

  /**
   * An unlock wakes every reader but only the oldest lock() waiter here: the others could
   * not all get it, and each failed attempt would ask the new holder to stop (64 waiters
   * took 0.8 s to pass one by one that way). Polls wake everybody.
   */
  private wake(id: string, reason: WakeReason): void {
    let lockWaiterWoken = false;
    for (const listener of this.watches.get(id)?.listeners ?? []) {
      if (reason === 'unlocked' && listener.takesLock) {
        if (lockWaiterWoken) continue;
        lockWaiterWoken = true;
      }
      listener.deliver(reason);
    }
  }
}

class RedisLock implements Lock {
  private token: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private stopHolding: (() => void) | undefined;

  constructor(
    private readonly locker: RedisLocker,
    private readonly id: string,
  ) {}

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    if (this.token) throw new Error(`lock ${this.id} is already held by this Lock`);
    const token = randomBytes(16).toString('hex');
    if (await this.tryAcquire(token)) return this.hold(token, requestRelease);
    if (signal.aborted) throw ERRORS.ERR_LOCK_TIMEOUT;

    const waiting = this.locker.waiter(this.id, signal, true);
    try {
      await this.locker.askToRelease(this.id);
      for (let round = 0; round < this.locker.maxRounds(); round += 1) {
        const reason = await waiting.next();
        if (reason === 'stop') break;
        if (await this.tryAcquire(token)) {
          this.hold(token, requestRelease);
          // As in process: those still waiting asked the previous holder to stop; the new one must hear it too.
          if (waiting.othersWaiting()) await this.locker.askToRelease(this.id);
          return;
        }
        // Taken by someone else in between, or the holder missed the request: ask (again).
        if (reason !== 'subscribed') await this.locker.askToRelease(this.id);
      }
    } finally {
      waiting.stop(this.token !== token);
    }
    throw ERRORS.ERR_LOCK_TIMEOUT;
  }

  private async tryAcquire(token: string): Promise<boolean> {
    const { redis, ttlMs } = this.locker;
    try {
      return (await redis.set(this.locker.lockKey(this.id), token, 'PX', ttlMs, 'NX')) === 'OK';
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** Listens for release requests and starts refreshing the TTL. */
  private hold(token: string, requestRelease: RequestRelease): void {
    const { redis, ttlMs, refreshMs, logger } = this.locker;
    const key = this.locker.lockKey(this.id);
    this.token = token;
    let releasing = false;
    const release = () => {
      if (releasing || this.token !== token) return;
      releasing = true;
      Promise.resolve()
        .then(requestRelease)
        .catch((error: unknown) => logger?.warn({ err: error, uploadId: this.id }, 'lock release callback failed'))
        .finally(() => {
          releasing = false;
        });
    };
    this.stopHolding = this.locker.hold(this.id, release);
    const timer = setInterval(() => {
      redis.eval(REFRESH, 1, key, token, String(ttlMs)).then(
        (kept) => {
          if (kept === 0 && this.token === token) {
            logger?.warn({ uploadId: this.id }, 'upload lock expired while held; asking the request to stop');
            release();
          }
        },
        (error: unknown) => logger?.warn({ err: error, uploadId: this.id }, 'could not refresh an upload lock'),
      );
    }, refreshMs);
    timer.unref();
    this.refreshTimer = timer;
    this.locker.refreshTimers.add(timer);
  }

  /**
   * Releases the lock if this Lock holds it; otherwise (never locked, already unlocked,
   * expired and taken) does nothing. A Redis failure is logged, not thrown: the request's
   * own outcome stands, and the key expires within the TTL.
   */
  async unlock(): Promise<void> {
    const token = this.token;
    this.token = undefined;
    if (this.refreshTimer) {
      clearInterval(this.refreshTimer);
      this.locker.refreshTimers.delete(this.refreshTimer);
      this.refreshTimer = undefined;
    }
    this.stopHolding?.();
    this.stopHolding = undefined;
    if (!token) return;
    await this.locker.redis
      .eval(UNLOCK, 1, this.locker.lockKey(this.id), token, this.locker.unlockedChannel(this.id))
      .catch((error: unknown) => this.locker.logger?.warn({ err: error, uploadId: this.id }, 'could not release an upload lock; it expires on its own'));
  }
}
