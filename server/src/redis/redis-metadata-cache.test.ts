import { afterEach, describe, expect, it } from 'vitest';
import { RedisMetadataCache } from './redis-metadata-cache.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

describe.skipIf(!redisUrl)('RedisMetadataCache', () => {
  const conns = connections();
  let prefix = '';

  afterEach(async () => {
    await deletePrefix(conns.connect(), prefix);
    await conns.closeAll();
  });

  it('round-trips values as JSON, lists and deletes them', async () => {
    prefix = testPrefix('cache');
    const cache = new RedisMetadataCache<{ 'upload-id': string; file: { id: string; size?: number } }>(conns.connect(), prefix);
    expect(await cache.get('a')).toBeUndefined();
    await cache.set('a', { 'upload-id': 'u1', file: { id: 'a', size: 10 } });
    await cache.set('b', { 'upload-id': 'u2', file: { id: 'b' } });
    expect(await cache.get('a')).toEqual({ 'upload-id': 'u1', file: { id: 'a', size: 10 } });
    expect((await cache.list()).sort()).toEqual(['a', 'b']);
    await cache.delete('a');
    expect(await cache.get('a')).toBeUndefined();
    expect(await cache.list()).toEqual(['b']);
  });

  it('is shared: what one instance writes, another reads', async () => {
    prefix = testPrefix('cache');
    const one = new RedisMetadataCache<{ size: number }>(conns.connect(), prefix);
    const two = new RedisMetadataCache<{ size: number }>(conns.connect(), prefix);
    await one.set('x', { size: 1 });
    expect(await two.get('x')).toEqual({ size: 1 });
    await two.delete('x');
    expect(await one.get('x')).toBeUndefined();
  });

  it('gives every entry a TTL, so finished uploads do not stay cached forever', async () => {
    prefix = testPrefix('cache');
    const redis = conns.connect();
    await new RedisMetadataCache(redis, prefix, 60_000).set('x', { size: 1 });
    const ttl = await redis.pttl(`${prefix}x`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);

    await new RedisMetadataCache(redis, prefix, 50).set('short', { size: 1 });
    const deadline = Date.now() + 5_000;
    while ((await redis.exists(`${prefix}short`)) === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await new RedisMetadataCache(redis, prefix).get('short')).toBeUndefined();
  });
});
