import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { JobKind, RetryPolicy } from '../processing/job-queue.js';
import type { ProcessingState } from '../processing/index.js';
import { createRedisJobQueue } from './redis-job-queue.js';
import { RedisLocker } from './redis-locker.js';
import { createRedisStatusStore } from './redis-status-store.js';

export { createRedisJobQueue } from './redis-job-queue.js';
export { RedisLocker } from './redis-locker.js';
export { createRedisStatusStore } from './redis-status-store.js';

export type RedisBackendOptions = Readonly<{
  /** redis://[user:password@]host:port[/db] (rediss:// for TLS). */
  url: string;
  /** Prefix of every key; instances that share uploads must share it (default `tus:`). */
  prefix?: string;
  /** The job queue's settings, as for the file queue. */
  policies: Readonly<Record<JobKind, RetryPolicy>>;
  concurrency: Readonly<Record<JobKind, number>>;
  logger: Logger;
}>;

export type RedisBackend = Readonly<{
  /** For createApp's deps.locker: upload locks shared by every instance. */
  locker: RedisLocker;
  /** For createApp's deps.state: the shared job queue and status records. */
  state: ProcessingState;
  /** Ends every connection; call after the app's stopBackground(). */
  close(): Promise<void>;
}>;

/**
 * Everything several instances share, on one Redis: upload locks (`<prefix>lock:`), the job
 * queue (`<prefix>jobs:`) and processing status (`<prefix>status:`). One command connection,
 * plus a subscriber connection each for lock-release requests and status events.
 */
export function createRedisBackend({ url, prefix = 'tus:', policies, concurrency, logger }: RedisBackendOptions): RedisBackend {
  const redis = new Redis(url, { maxRetriesPerRequest: 3, enableOfflineQueue: true });
  redis.on('error', (error: unknown) => logger.warn({ err: error }, 'redis connection error'));
  const locker = new RedisLocker({ redis, prefix: `${prefix}lock:`, logger });
  const statuses = createRedisStatusStore({ redis, prefix: `${prefix}status:`, logger });
  const queue = createRedisJobQueue({ redis, prefix: `${prefix}jobs:`, policies, concurrency, logger });
  return {
    locker,
    state: { queue, statuses },
    async close() {
      await Promise.all([locker.close(), statuses.close()]);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
