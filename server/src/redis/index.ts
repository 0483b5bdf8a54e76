import type { KvStore } from '@tus/utils';
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { JobKind, RetryPolicy } from '../processing/job-queue.js';
import type { ProcessingStores } from '../processing/index.js';
import { createRedisLimitCounters } from '../limits/redis-limit-counters.js';
import type { LimitCounters } from '../limits/limit-counters.js';
import { createRedisJobQueue } from './redis-job-queue.js';
import { RedisLocker } from './redis-locker.js';
import { RedisMetadataCache } from './redis-metadata-cache.js';
import { createRedisStatusStore } from './redis-status-store.js';
import { withTimeout } from '../shared/with-timeout.js';

export { createRedisJobQueue } from './redis-job-queue.js';
export { RedisLocker } from './redis-locker.js';
export { createRedisStatusStore } from './redis-status-store.js';

/** How long a lock outlives an instance that stopped refreshing it (killed, frozen, cut off). */
export const LOCK_TTL_MS = 10_000;

export type RedisBackendOptions = Readonly<{
  /** redis://[user:password@]host:port[/db] (rediss:// for TLS). */
  url: string;
  /** Prefix of every key; instances that share uploads must share it (default `tus:`). */
  prefix?: string;
  /** The job queue's settings, as for the file queue. */
  policies: Readonly<Record<JobKind, RetryPolicy>>;
  concurrency: Readonly<Record<JobKind, number>>;
  /** How long delivered and dead hook jobs are kept (JOB_RETENTION). @default forever */
  retentionMs?: number;
  logger: Logger;
}>;

export type RedisBackend = Readonly<{
  /** For createApp's deps.locker: upload locks shared by every instance. */
  locker: RedisLocker;
  /** For createApp's deps.state: the shared job queue and status records. */
  state: ProcessingStores;
  /** For createApp's deps.limitCounters: per-subject limits counted across every instance (`<prefix>limits:`). */
  limitCounters: LimitCounters;
  /**
   * For the S3 store's metadata cache (`<prefix>s3-info:`): an upload's `.info` as every
   * instance last wrote it, rather than a per-process copy that goes stale (tus-node-server#552).
   */
  metadataCache<T>(): KvStore<T>;
  /** Resolves when Redis answers a PING within `timeoutMs`; for startup and /readyz. */
  checkReady(timeoutMs?: number): Promise<void>;
  /** Ends every connection; call after the app's stopBackground(). */
  close(): Promise<void>;
}>;

/**
 * Everything several instances share, on one Redis: upload locks (`<prefix>lock:`), the job
 * queue (`<prefix>jobs:`), processing status (`<prefix>status:`) and the S3 store's metadata
 * cache (`<prefix>s3-info:`). One command connection, plus a subscriber connection each for
 * the locker (release requests and unlocks; opened here, at once, not by the first request)
 * and status events.
 */
export function createRedisBackend({ url, prefix = 'tus:', policies, concurrency, retentionMs, logger }: RedisBackendOptions): RedisBackend {
  const redis = new Redis(url, { maxRetriesPerRequest: 3, enableOfflineQueue: true });
  redis.on('error', (error: unknown) => logger.warn({ err: error }, 'redis connection error'));
  // 10 s: a killed instance's uploads are free again 10 s later; holders refresh every ~3 s,
  // and waiters that miss an unlock message look again every second.
  const locker = new RedisLocker({ redis, prefix: `${prefix}lock:`, ttlMs: LOCK_TTL_MS, logger });
  const statuses = createRedisStatusStore({ redis, prefix: `${prefix}status:`, logger });
  const queue = createRedisJobQueue({ redis, prefix: `${prefix}jobs:`, policies, concurrency, retentionMs, logger });
  return {
    locker,
    state: { queue, statuses },
    limitCounters: createRedisLimitCounters({ redis, prefix: `${prefix}limits:` }),
    metadataCache: <T>() => new RedisMetadataCache<T>(redis, `${prefix}s3-info:`),
    async checkReady(timeoutMs = 3_000) {
      await withTimeout(redis.ping(), timeoutMs, () => new Error(`no answer within ${timeoutMs} ms (${redis.status})`));
    },
    async close() {
      await Promise.all([locker.close(), statuses.close()]);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
