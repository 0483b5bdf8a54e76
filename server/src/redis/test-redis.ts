import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

/**
 * Test helpers for server/src/redis: the URL comes from e2e/services/redis-global-setup.ts
 * through `inject` (undefined without that globalSetup: the suites then skip).
 */
export const redisUrl: string | undefined = inject('redisUrl');

/** A fresh key prefix per test, so tests never see each other's keys. */
export const testPrefix = (what: string) => `test:${what}:${randomBytes(6).toString('hex')}:`;

/** Connections opened by a test, closed by `closeAll()`. */
export function connections() {
  const open: Redis[] = [];
  return {
    connect(): Redis {
      const redis = new Redis(redisUrl!, { maxRetriesPerRequest: 2, lazyConnect: false });
      redis.on('error', () => undefined);
      open.push(redis);
      return redis;
    },
    async closeAll(): Promise<void> {
      await Promise.all(open.splice(0).map((r) => r.quit().catch(() => r.disconnect())));
    },
  };
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  for (let round = 0; round < 10_000; round += 1) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
    if (cursor === '0') return;
  }
}
