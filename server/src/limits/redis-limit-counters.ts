import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RETRY_LATER_SECONDS, STREAM_SLOT_MAX_MS, type LimitCounters, type LimitName, type Refusal } from './limit-counters.js';

/*
 * Keys (P = prefix, S = subject, appended verbatim):
 *   P:up:S            zset upload id → when it was counted (ms): the subject's uploads in progress
 *   P:bytes:S         hash upload id → declared bytes of each of them
 *   P:owner           hash upload id → S, so a release needs only the id
 *   P:rate:S:<minute> counter of creations in that minute (expires after two)
 *   P:streams:S       zset slot token → when it was opened (ms)
 * Every check and its count is one Lua script, timed by the Redis server's clock.
 */

const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** ARGV: prefix, subject, id, bytes, track (1|0), maxInProgress, maxPerMinute, maxBytes, staleAfterMs → {} or {limit, retryAfterSeconds}. */
const ADMIT = `${NOW}
local p, s, id = ARGV[1], ARGV[2], ARGV[3]
local bytes, track = tonumber(ARGV[4]), ARGV[5] == '1'
local maxUp, maxRate, maxBytes, stale = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local up, by, owner = p .. 'up:' .. s, p .. 'bytes:' .. s, p .. 'owner'
if stale > 0 then
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', up, '-inf', now - stale, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', up, old)
    redis.call('HDEL', by, old)
    redis.call('HDEL', owner, old)
  end
end
if maxUp > 0 and redis.call('ZCARD', up) >= maxUp then return {'uploads-in-progress', ${RETRY_LATER_SECONDS}} end
if maxBytes > 0 then
  local total = bytes
  for _, v in ipairs(redis.call('HVALS', by)) do total = total + tonumber(v) end
  if total > maxBytes then return {'unfinished-bytes', ${RETRY_LATER_SECONDS}} end
end
if maxRate > 0 then
  local minute = math.floor(now / 60000)
  local rk = p .. 'rate:' .. s .. ':' .. minute
  if tonumber(redis.call('GET', rk) or '0') >= maxRate then
    return {'creations-per-minute', math.max(1, math.ceil(((minute + 1) * 60000 - now) / 1000))}
  end
  redis.call('INCR', rk)
  redis.call('PEXPIRE', rk, 120000)
end
if track and (maxUp > 0 or maxBytes > 0) then
  redis.call('ZADD', up, now, id)
  redis.call('HSET', by, id, bytes)
  redis.call('HSET', owner, id, s)
  if stale > 0 then
    redis.call('PEXPIRE', up, stale)
    redis.call('PEXPIRE', by, stale)
  end
end
return {}`;

/** ARGV: prefix, id. */
const RELEASE = `
local p, id = ARGV[1], ARGV[2]
local s = redis.call('HGET', p .. 'owner', id)
if not s then return 0 end
redis.call('ZREM', p .. 'up:' .. s, id)
redis.call('HDEL', p .. 'bytes:' .. s, id)
redis.call('HDEL', p .. 'owner', id)
return 1`;

/** ARGV: prefix, subject, token, max, maxAgeMs → 1 if the slot was taken. */
const OPEN_STREAM = `${NOW}
local key = ARGV[1] .. 'streams:' .. ARGV[2]
local maxAge = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - maxAge)
if redis.call('ZCARD', key) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', key, now, ARGV[3])
redis.call('PEXPIRE', key, maxAge)
return 1`;

/**
 * The limits' counts in Redis, shared by every instance on one prefix (default `tus:limits:`):
 * a sorted set and a hash per subject for uploads in progress, INCR with an expiry for the
 * creations of each minute, a sorted set of open event streams.
 */
export function createRedisLimitCounters({ redis, prefix = 'tus:limits:' }: Readonly<{ redis: Redis; prefix?: string }>): LimitCounters {
  return {
    async admitCreation(subject, uploadId, bytes, track, limits) {
      const reply = (await redis.eval(
        ADMIT,
        0,
        prefix,
        subject,
        uploadId,
        String(bytes),
        track ? '1' : '0',
        String(limits.uploadsInProgress),
        String(limits.creationsPerMinute),
        String(limits.unfinishedBytes),
        String(limits.staleAfterMs),
      )) as [] | [LimitName, number];
      return reply.length === 0 ? undefined : ({ limit: reply[0], retryAfterSeconds: Number(reply[1]) } satisfies Refusal);
    },
    async release(uploadId) {
      await redis.eval(RELEASE, 0, prefix, uploadId);
    },
    async openStream(subject, max) {
      const token = randomBytes(9).toString('base64url');
      const taken = await redis.eval(OPEN_STREAM, 0, prefix, subject, token, String(max), String(STREAM_SLOT_MAX_MS));
      if (taken !== 1) return { limit: 'event-streams', retryAfterSeconds: RETRY_LATER_SECONDS };
      let closed = false;
      return {
        async close() {
          if (closed) return;
          closed = true;
          await redis.zrem(`${prefix}streams:${subject}`, token);
        },
      };
    },
  };
}
