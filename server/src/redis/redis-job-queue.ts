import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { JOB_KINDS, retryDelay, type Job, type JobHandlers, type JobKind, type JobQueue, type JobStatus, type NewJob, type RetryPolicy } from '../processing/job-queue.js';

export type RedisJobQueueOptions = Readonly<{
  /** Connection for commands; the queue never closes it. */
  redis: Redis;
  /** Prefix of every key (default `tus:jobs:`): one prefix is one queue, shared by every instance. */
  prefix?: string;
  policies: Readonly<Record<JobKind, RetryPolicy>>;
  /** Jobs of each kind this instance runs at once (always from different groups). */
  concurrency: Readonly<Record<JobKind, number>>;
  /** How long a claimed group stays leased without a heartbeat: a dead instance's job runs again after this. */
  leaseMs?: number;
  /** How often a running job's lease is renewed (default a third of leaseMs). */
  heartbeatMs?: number;
  /** Longest wait between two looks for work (jobs enqueued by other instances, lease expiries). */
  pollMs?: number;
  /**
   * How long a delivered or dead hook job (deliver-hook) is kept: its hash then expires (Redis
   * removes it) and its key may be enqueued again. Processing jobs are kept. @default forever
   */
  retentionMs?: number;
  logger: Logger;
}>;

/*
 * Keys (P = prefix; a job key or group name is appended verbatim, Redis keys are binary-safe):
 *   P:job:<key>     hash: job (JSON of the Job without seq), seq, kind, group, state (pending|done|dead)
 *                   Done and dead hashes are kept: they make enqueue idempotent; a hook job's
 *                   expires after the retention (PEXPIRE when it finishes).
 *   P:group:<group> list of pending job keys in enqueue order; the head is the next to run.
 *   P:ready:<kind>  zset of groups whose head job has that kind and is not leased; score = when it is due (ms).
 *   P:leases        zset of groups being run; score = lease expiry (ms).
 *   P:owners        hash group → token of the instance holding the lease.
 *   P:seq           counter for Job.seq.   P:pending: number of pending jobs (for idle()).
 * Every transition is one Lua script, timed by the Redis server's clock (instances' clocks may differ).
 * A group is in exactly one of: ready (one kind), leased, or nowhere (no pending job).
 */

const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** Puts group g back into the ready set of its head job's kind, due at `due`; drops it if empty. */
const REQUEUE = `
local function requeue(p, g, due)
  local head = redis.call('LINDEX', p .. 'group:' .. g, 0)
  if head then
    local kind = redis.call('HGET', p .. 'job:' .. head, 'kind')
    redis.call('ZADD', p .. 'ready:' .. kind, due, g)
  end
end`;

/** ARGV: prefix, key, group, kind, jobJson → 1 if enqueued, 0 if the key exists in any state. */
const ENQUEUE = `${NOW}
local p, key, g, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local jk = p .. 'job:' .. key
if redis.call('EXISTS', jk) == 1 then return 0 end
local seq = redis.call('INCR', p .. 'seq')
redis.call('HSET', jk, 'job', ARGV[5], 'seq', seq, 'kind', kind, 'group', g, 'state', 'pending')
redis.call('INCR', p .. 'pending')
if redis.call('RPUSH', p .. 'group:' .. g, key) == 1 then
  redis.call('ZADD', p .. 'ready:' .. kind, now, g)
end
return 1`;

/**
 * ARGV: prefix, kind, leaseMs, token.
 * Returns {'job', group, jobJson, seq} for a claimed group, or {'none', msUntilNextDue or -1}.
 */
const CLAIM = `${NOW}
${REQUEUE}
local p, kind, leaseMs, token = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- Leases of dead instances: their group becomes runnable again, attempts unchanged.
for _, g in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', p .. 'leases', g)
  redis.call('HDEL', p .. 'owners', g)
  requeue(p, g, now)
end
local ready = p .. 'ready:' .. kind
for _ = 1, 100 do
  local due = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, 1)
  if #due == 0 then break end
  local g = due[1]
  redis.call('ZREM', ready, g)
  local head = redis.call('LINDEX', p .. 'group:' .. g, 0)
  if head then
    redis.call('ZADD', p .. 'leases', now + leaseMs, g)
    redis.call('HSET', p .. 'owners', g, token)
    local job = redis.call('HMGET', p .. 'job:' .. head, 'job', 'seq')
    return {'job', g, job[1], job[2]}
  end
end
local nextDue = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
if #nextDue == 0 then return {'none', -1} end
return {'none', math.max(0, tonumber(nextDue[2]) - now)}`;

/** ARGV: prefix, group, token, leaseMs → 1 if the lease is still ours (and renewed). */
const HEARTBEAT = `${NOW}
local p, g = ARGV[1], ARGV[2]
if redis.call('HGET', p .. 'owners', g) ~= ARGV[3] then return 0 end
redis.call('ZADD', p .. 'leases', 'XX', now + tonumber(ARGV[4]), g)
return 1`;

/**
 * ARGV: prefix, group, token, key, outcome (done|dead|retry), jobJson, retryDelayMs, hookRetentionMs (0: forever).
 * Ends a lease: records the job and moves the group on. 0 if the lease was no longer ours.
 */
const COMPLETE = `${NOW}
${REQUEUE}
local p, g, token, key, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', p .. 'owners', g) ~= token then return 0 end
redis.call('HDEL', p .. 'owners', g)
redis.call('ZREM', p .. 'leases', g)
local jk = p .. 'job:' .. key
redis.call('HSET', jk, 'job', ARGV[6])
if outcome == 'retry' then
  requeue(p, g, now + tonumber(ARGV[7]))
  return 1
end
redis.call('HSET', jk, 'state', outcome)
local retention = tonumber(ARGV[8])
if retention > 0 and redis.call('HGET', jk, 'kind') == 'deliver-hook' then redis.call('PEXPIRE', jk, retention) end
redis.call('LREM', p .. 'group:' .. g, 1, key)
redis.call('DECR', p .. 'pending')
requeue(p, g, now)
return 1`;

/**
 * ARGV: prefix, kind, maxDelayMs. A backoff never outlasts the current policy's cap: due times
 * scheduled by an instance with a longer policy are brought forward (a restarted instance with
 * a new policy retries at once, as the file queue does).
 */
const CLAMP = `${NOW}
local ready = ARGV[1] .. 'ready:' .. ARGV[2]
local cap = now + tonumber(ARGV[3])
local late = redis.call('ZRANGEBYSCORE', ready, '(' .. cap, '+inf')
for _, g in ipairs(late) do redis.call('ZADD', ready, cap, g) end
return #late`;

type StoredJob = Omit<Job, 'seq'>;

/**
 * JobQueue over Redis for several server instances, with the guarantees of job-queue.ts:
 * - enqueue is one Lua script that refuses a key whose hash exists (pending, done or dead);
 * - jobs live in Redis (durability is Redis's: run it with appendonly for production);
 * - a group is claimed as a whole under a lease, so its jobs run one at a time, on one
 *   instance at a time, in enqueue order; the holder renews the lease while the job runs, and
 *   a lease that expires (its instance died) makes the group runnable again elsewhere;
 * - a failed attempt puts the group back in the ready set, due after the backoff.
 *
 * A job is finished (done/dead/retry) only by the instance holding its group's lease; if the
 * lease was lost meanwhile (a pause longer than leaseMs), the result is dropped with a warning
 * and the job runs again: choose leaseMs well above the longest event-loop stall.
 * Unlike the file queue, a job interrupted by a crash runs again only after its lease expires.
 */
export function createRedisJobQueue(options: RedisJobQueueOptions): JobQueue {
  const { redis, policies, concurrency, logger } = options;
  const prefix = options.prefix ?? 'tus:jobs:';
  const leaseMs = options.leaseMs ?? 30_000;
  const heartbeatMs = options.heartbeatMs ?? Math.max(10, Math.floor(leaseMs / 3));
  const pollMs = options.pollMs ?? 1_000;
  const retentionMs = options.retentionMs ?? 0;
  const token = randomBytes(12).toString('hex');
  const running = new Set<Promise<void>>();
  const runningByKind = new Map<JobKind, number>(JOB_KINDS.map((kind) => [kind, 0]));
  let handlers: JobHandlers | undefined;
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let pumping: Promise<void> | undefined;
  let again = false;

  const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

  async function enqueue(newJob: NewJob): Promise<boolean> {
    const stored: StoredJob = { ...newJob, enqueuedAt: new Date().toISOString(), attempts: 0, lastError: null };
    const added = await redis.eval(ENQUEUE, 0, prefix, newJob.key, newJob.group, newJob.kind, JSON.stringify(stored));
    if (added === 1) wake();
    return added === 1;
  }

  async function status(key: string): Promise<JobStatus | undefined> {
    const state = await redis.hget(`${prefix}job:${key}`, 'state');
    return (state ?? undefined) as JobStatus | undefined;
  }

  async function complete(group: string, job: Job, outcome: 'done' | 'dead' | 'retry', delayMs = 0): Promise<void> {
    const { seq: _seq, ...stored } = job;
    const ok = await redis.eval(COMPLETE, 0, prefix, group, token, job.key, outcome, JSON.stringify(stored), String(delayMs), String(retentionMs));
    if (ok !== 1) logger.warn({ job: job.key, outcome }, 'job lease was lost before the job finished; another instance will run it again');
  }

  async function execute(group: string, job: Job): Promise<void> {
    const policy = policies[job.kind];
    const heartbeat = setInterval(() => {
      redis.eval(HEARTBEAT, 0, prefix, group, token, String(leaseMs)).then(
        (kept) => {
          if (kept !== 1) logger.warn({ job: job.key }, 'job lease lost while running');
        },
        (error: unknown) => logger.warn({ err: error, job: job.key }, 'could not renew a job lease'),
      );
    }, heartbeatMs);
    heartbeat.unref();
    try {
      try {
        await handlers!.run(job);
      } catch (error) {
        const attempts = job.attempts + 1;
        const updated: Job = { ...job, attempts, lastError: message(error) };
        if (attempts >= policy.maxAttempts) {
          logger.warn({ job: job.key, attempts, err: error }, 'job failed its last attempt');
          await handlers!.dead(updated, error).catch((deadError: unknown) => logger.error({ err: deadError, job: job.key }, 'dead-job handler failed'));
          await complete(group, updated, 'dead');
          return;
        }
        const delay = retryDelay(policy, attempts);
        logger.info({ job: job.key, attempts, retryInMs: delay, error: updated.lastError }, 'job failed; retrying');
        await complete(group, updated, 'retry', delay);
        return;
      }
      await complete(group, job, 'done');
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** Claims and starts jobs while this instance has capacity; returns when to look again. */
  async function claimAll(): Promise<number> {
    let nextLook = pollMs;
    for (const kind of JOB_KINDS) {
      for (let n = 0; n < 1_000 && !stopped && runningByKind.get(kind)! < concurrency[kind]; n += 1) {
        const reply = (await redis.eval(CLAIM, 0, prefix, kind, String(leaseMs), token)) as [string, ...(string | number | null)[]];
        if (stopped && reply[0] === 'job') {
          // Stopped while claiming: hand the group back untouched.
          const [, group, json, seq] = reply as [string, string, string, string];
          await complete(group, { ...(JSON.parse(json) as StoredJob), seq: Number(seq) }, 'retry', 0);
          break;
        }
        if (reply[0] !== 'job') {
          const due = Number(reply[1]);
          if (due >= 0) nextLook = Math.min(nextLook, due);
          break;
        }
        const [, group, json, seq] = reply as [string, string, string, string];
        const job: Job = { ...(JSON.parse(json) as StoredJob), seq: Number(seq) };
        runningByKind.set(kind, runningByKind.get(kind)! + 1);
        const run: Promise<void> = execute(group, job)
          .catch((error: unknown) => logger.error({ err: error, job: job.key }, 'queue bookkeeping failed'))
          .finally(() => {
            running.delete(run);
            runningByKind.set(kind, runningByKind.get(kind)! - 1);
            wake();
          });
        running.add(run);
      }
    }
    return nextLook;
  }

  function pump(): void {
    timer = undefined;
    if (stopped || !handlers) return;
    if (pumping) {
      again = true;
      return;
    }
    again = false;
    pumping = claimAll()
      .then(
        (nextLook) => schedule(again ? 0 : nextLook),
        (error: unknown) => {
          logger.error({ err: error }, 'job queue could not claim jobs');
          schedule(pollMs);
        },
      )
      .finally(() => {
        pumping = undefined;
        if (again) schedule(0);
      });
  }

  function schedule(delayMs: number): void {
    if (stopped || !handlers) return;
    clearTimeout(timer);
    timer = setTimeout(pump, Math.max(0, delayMs));
    timer.unref();
  }

  function wake(): void {
    if (pumping) again = true;
    else schedule(0);
  }

  async function isIdle(): Promise<boolean> {
    if (running.size > 0 || pumping) return false;
    return Number((await redis.get(`${prefix}pending`)) ?? 0) <= 0;
  }

  return {
    enqueue,
    status,
    start(jobHandlers: JobHandlers): void {
      handlers = jobHandlers;
      stopped = false;
      Promise.all(JOB_KINDS.map((kind) => redis.eval(CLAMP, 0, prefix, kind, String(policies[kind].maxDelayMs)))).then(
        () => schedule(0),
        (error: unknown) => {
          logger.error({ err: error }, 'job queue could not start');
          schedule(pollMs);
        },
      );
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await pumping;
      await Promise.all(running);
    },
    /** Polls (every 10 ms) until no job is pending anywhere in this queue and none runs here. */
    async idle(): Promise<void> {
      for (;;) {
        if (await isIdle()) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
  };
}
