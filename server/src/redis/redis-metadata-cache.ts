import type { KvStore } from '@tus/utils';
import type { Redis } from 'ioredis';

/** How long a cached `.info` lives after it was cached; a miss only costs one GetObject. */
export const METADATA_CACHE_TTL_MS = 60 * 60_000;

/**
 * @tus/s3-store's metadata cache on Redis, shared by every instance. Like @tus/utils'
 * IoRedisKvStore, but every entry expires: upstream reads an upload's info again after it
 * finished (every HEAD and GET) and caches it for good, so without a TTL Redis would keep
 * one key per upload forever. Dropping an entry is always safe: the `.info` object on S3 is
 * the truth and the next read fetches it.
 */
export class RedisMetadataCache<T> implements KvStore<T> {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlMs = METADATA_CACHE_TTL_MS,
  ) {}

  async get(key: string): Promise<T | undefined> {
    const value = await this.redis.get(this.prefix + key);
    return value === null ? undefined : (JSON.parse(value) as T);
  }

  async set(key: string, value: T): Promise<void> {
    await this.redis.set(this.prefix + key, JSON.stringify(value), 'PX', this.ttlMs);
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }

  async list(): Promise<string[]> {
    const keys: string[] = [];
    let cursor = '0';
    // SCAN pages until the cursor comes back to 0; bounded all the same (5 million keys).
    for (let page = 0; page < 10_000; page += 1) {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 500);
      for (const key of batch) keys.push(key.slice(this.prefix.length));
      cursor = next;
      if (cursor === '0') break;
    }
    return [...new Set(keys)];
  }
}
