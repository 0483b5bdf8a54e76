import { afterEach, describe, expect, it } from 'vitest';
import type { Job, JobHandlers, JobKind, JobQueue, NewJob, RetryPolicy } from './job-queue.js';
import { withTimeout } from '../shared/with-timeout.js';

/**
 * The guarantees every JobQueue gives (see job-queue.ts), as a suite that runs against any
 * implementation: the embedded file queue now, a Redis queue later. Not a test file itself:
 * an implementation's test file calls `jobQueueContract(name, backend)`.
 *
 * Every wait is bounded (a broken queue fails with a message instead of hanging) and no
 * test asserts how fast anything is; backoff is checked only as "not earlier than".
 */

export type ContractQueueOptions = Readonly<{
  policies: Readonly<Record<JobKind, RetryPolicy>>;
  concurrency: Readonly<Record<JobKind, number>>;
  /** How long delivered and dead hook jobs are kept (JOB_RETENTION); unset keeps them. */
  retentionMs?: number;
}>;

/** One backing store (a directory, a Redis key prefix) that several queue instances can open. */
export type JobQueueBackend = Readonly<{
  /**
   * A queue instance on this backend. Opening a second one on the same backend is what a
   * restarted process does: it must see every job the first one persisted.
   */
  open(options: ContractQueueOptions): JobQueue;
  /** Removes everything the backend stored. */
  destroy(): Promise<void>;
}>;

export type JobQueueContractOptions = Readonly<{
  /**
   * Whether a job that was *running* when its instance died (never finished, never stopped)
   * runs again on a new instance without waiting. The file queue does this at load; a
   * queue with leases may need the lease to expire first and can opt out here.
   */
  resumesInterruptedJobsAtOnce?: boolean;
}>;

const WAIT_MS = 5_000;

const policy = (maxAttempts: number, baseDelayMs = 20): RetryPolicy => ({ maxAttempts, baseDelayMs, maxDelayMs: 10 * baseDelayMs });

export function contractOptions(
  overrides: { maxAttempts?: number; baseDelayMs?: number; concurrency?: number; hookConcurrency?: number; retentionMs?: number } = {},
): ContractQueueOptions {
  const p = policy(overrides.maxAttempts ?? 3, overrides.baseDelayMs ?? 20);
  return {
    policies: { 'process-upload': p, 'deliver-hook': p },
    concurrency: { 'process-upload': overrides.concurrency ?? 4, 'deliver-hook': overrides.hookConcurrency ?? 4 },
    ...(overrides.retentionMs !== undefined ? { retentionMs: overrides.retentionMs } : {}),
  };
}

export const newJob = (key: string, group = key, payload: unknown = { key }, kind: JobKind = 'process-upload'): NewJob => ({ key, group, kind, payload });

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` with a message naming what was awaited. */
export const within = <T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> =>
  withTimeout(promise, ms, () => new Error(`timed out after ${ms} ms waiting for ${what}`));

/** Polls until `check` holds; bounded in time and in rounds. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  for (let round = 0; round < 10_000; round += 1) {
    if (await check()) return;
    if (Date.now() > deadline) break;
    await sleep(5);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A promise the test settles when it wants: a job that blocks until released. */
export function latch(): { promise: Promise<void>; release(): void; fail(error: Error): void } {
  let release!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  promise.catch(() => undefined);
  return { promise, release, fail };
}

type Run = Readonly<{ key: string; attempts: number; startedAt: number; endedAt?: number; ok?: boolean }>;

/** Records every run and dead-letter call; the behaviour per job is the test's. */
function recorder(behaviour: (job: Job) => Promise<void> | void = () => undefined) {
  const runs: { key: string; attempts: number; lastError: string | null; payload: unknown; startedAt: number; endedAt?: number; ok?: boolean }[] = [];
  const deaths: { job: Job; error: unknown }[] = [];
  let running = 0;
  let maxRunning = 0;
  const handlers: JobHandlers = {
    async run(job) {
      const entry: (typeof runs)[number] = { key: job.key, attempts: job.attempts, lastError: job.lastError, payload: job.payload, startedAt: performance.now() };
      runs.push(entry);
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      try {
        await behaviour(job);
        entry.ok = true;
      } catch (error) {
        entry.ok = false;
        throw error;
      } finally {
        running -= 1;
        entry.endedAt = performance.now();
      }
    },
    async dead(job, error) {
      deaths.push({ job, error });
    },
  };
  return {
    handlers,
    runs,
    deaths,
    runsOf: (key: string): readonly Run[] => runs.filter((r) => r.key === key),
    get maxRunning() {
      return maxRunning;
    },
    get running() {
      return running;
    },
  };
}

/**
 * Runs the JobQueue guarantees against `createBackend()`, one fresh backend per test.
 * `name` labels the describe block ("file queue", "redis queue").
 */
export function jobQueueContract(name: string, createBackend: () => Promise<JobQueueBackend>, options: JobQueueContractOptions = {}): void {
  describe(`JobQueue contract: ${name}`, () => {
    const open: JobQueue[] = [];
    const backends: JobQueueBackend[] = [];

    async function backend(): Promise<JobQueueBackend> {
      const created = await createBackend();
      backends.push(created);
      return created;
    }

    function queueOn(store: JobQueueBackend, queueOptions: ContractQueueOptions = contractOptions()): JobQueue {
      const queue = store.open(queueOptions);
      open.push(queue);
      return queue;
    }

    afterEach(async () => {
      // Stop every instance (bounded: a job the test left blocked must not hang cleanup).
      await Promise.all(open.splice(0).map((q) => within(q.stop(), 'a queue to stop', 2_000).catch(() => undefined)));
      await Promise.all(backends.splice(0).map((b) => b.destroy()));
    });

    describe('idempotent enqueue by key', () => {
      it('a second enqueue of a pending key adds nothing and the job runs once', async () => {
        const queue = queueOn(await backend());
        expect(await queue.enqueue(newJob('a', 'g', { first: true }))).toBe(true);
        expect(await queue.enqueue(newJob('a', 'g', { first: false }))).toBe(false);
        expect(await queue.status('a')).toBe('pending');
        const rec = recorder();
        queue.start(rec.handlers);
        await within(queue.idle(), 'the queue to be idle');
        expect(rec.runs.map((r) => [r.key, r.payload])).toEqual([['a', { first: true }]]);
        expect(await queue.status('a')).toBe('done');
      });

      it('concurrent enqueues of one key: exactly one wins', async () => {
        const queue = queueOn(await backend());
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => queue.enqueue(newJob('same', 'g', { i }))));
        expect(results.filter(Boolean)).toHaveLength(1);
        const rec = recorder();
        queue.start(rec.handlers);
        await within(queue.idle(), 'the queue to be idle');
        expect(rec.runsOf('same')).toHaveLength(1);
      });

      it('a key that is done is never enqueued again, also by a restarted instance', async () => {
        const store = await backend();
        const first = queueOn(store);
        const rec = recorder();
        first.start(rec.handlers);
        expect(await first.enqueue(newJob('k'))).toBe(true);
        await within(first.idle(), 'the first job to finish');
        expect(await first.status('k')).toBe('done');
        expect(await first.enqueue(newJob('k'))).toBe(false);
        await first.stop();

        const second = queueOn(store);
        second.start(rec.handlers);
        expect(await second.status('k')).toBe('done');
        expect(await second.enqueue(newJob('k'))).toBe(false);
        await within(second.idle(), 'the restarted queue to be idle');
        expect(rec.runsOf('k')).toHaveLength(1);
      });

      it('a key that is dead is never enqueued again, also by a restarted instance', async () => {
        const store = await backend();
        const first = queueOn(store, contractOptions({ maxAttempts: 1 }));
        const rec = recorder(() => {
          throw new Error('always fails');
        });
        first.start(rec.handlers);
        await first.enqueue(newJob('k'));
        await within(first.idle(), 'the job to die');
        expect(await first.status('k')).toBe('dead');
        expect(await first.enqueue(newJob('k'))).toBe(false);
        await first.stop();

        const second = queueOn(store, contractOptions({ maxAttempts: 1 }));
        second.start(rec.handlers);
        expect(await second.status('k')).toBe('dead');
        expect(await second.enqueue(newJob('k'))).toBe(false);
        await within(second.idle(), 'the restarted queue to be idle');
        expect(rec.runsOf('k')).toHaveLength(1);
        expect(rec.deaths).toHaveLength(1);
      });

      it('keys are opaque: similar-looking keys stay distinct', async () => {
        const queue = queueOn(await backend());
        const keys = ['a.b', 'a%2Eb', 'a%252Eb', 'process:x/../y', 'process:x', 'Process:x', 'ключ', 'a b', '..'];
        for (const key of keys) expect(await queue.enqueue(newJob(key, 'g-' + key)), key).toBe(true);
        for (const key of keys) expect(await queue.enqueue(newJob(key, 'g-' + key)), key).toBe(false);
        const rec = recorder();
        queue.start(rec.handlers);
        await within(queue.idle(), 'the queue to be idle');
        expect(rec.runs.map((r) => r.key).sort()).toEqual([...keys].sort());
        for (const key of keys) expect(await queue.status(key), key).toBe('done');
      });

      it('status is undefined for a key never enqueued', async () => {
        const queue = queueOn(await backend());
        expect(await queue.status('never')).toBeUndefined();
      });
    });

    describe('durability', () => {
      it('jobs enqueued before a restart run on the new instance, payload intact', async () => {
        const store = await backend();
        const first = queueOn(store);
        // Never started: the process "died" with these jobs pending.
        const payload = { id: 'u1', nested: { list: [1, 2, 3], text: 'é ✓' } };
        expect(await first.enqueue(newJob('p1', 'g1', payload))).toBe(true);
        expect(await first.enqueue(newJob('p2', 'g2'))).toBe(true);
        await first.stop();

        const second = queueOn(store);
        expect(await second.status('p1')).toBe('pending');
        const rec = recorder();
        second.start(rec.handlers);
        await within(second.idle(), 'the restarted queue to run the pending jobs');
        expect(rec.runs.map((r) => r.key).sort()).toEqual(['p1', 'p2']);
        expect(rec.runs.find((r) => r.key === 'p1')?.payload).toEqual(payload);
        expect(await second.status('p1')).toBe('done');
      });

      it('keeps the enqueue order of a group across a restart', async () => {
        const store = await backend();
        const first = queueOn(store);
        for (const key of ['o1', 'o2', 'o3', 'o4']) await first.enqueue(newJob(key, 'one-group'));
        await first.stop();
        const second = queueOn(store);
        const rec = recorder();
        second.start(rec.handlers);
        await within(second.idle(), 'the restarted queue to be idle');
        expect(rec.runs.map((r) => r.key)).toEqual(['o1', 'o2', 'o3', 'o4']);
      });

      it('a job that failed before a restart keeps its attempt count and dies on the new instance', async () => {
        const store = await backend();
        const options = contractOptions({ maxAttempts: 2, baseDelayMs: 60_000 });
        const first = queueOn(store, options);
        const rec = recorder(() => {
          throw new Error('still broken');
        });
        first.start(rec.handlers);
        await first.enqueue(newJob('r'));
        await until(() => rec.runsOf('r').length === 1 && rec.running === 0, 'the first attempt');
        await first.stop();
        expect(await first.status('r')).toBe('pending');

        const second = queueOn(store, contractOptions({ maxAttempts: 2, baseDelayMs: 20 }));
        second.start(rec.handlers);
        await within(second.idle(), 'the job to die on the restarted queue', 10_000);
        expect(rec.runsOf('r').map((r) => r.attempts)).toEqual([0, 1]);
        expect(rec.runs.at(-1)?.lastError).toBe('still broken');
        expect(rec.deaths).toHaveLength(1);
        expect(await second.status('r')).toBe('dead');
      });

      it.skipIf(options.resumesInterruptedJobsAtOnce === false)('a job interrupted mid-run (the process died) runs again on a new instance', async () => {
        const store = await backend();
        const first = queueOn(store);
        const blocked = latch();
        const started = latch();
        first.start({
          run: () => {
            started.release();
            return blocked.promise; // never settles: the "process" dies mid-run
          },
          dead: async () => undefined,
        });
        await first.enqueue(newJob('interrupted', 'g', { n: 1 }));
        await within(started.promise, 'the job to start');
        // The first instance is abandoned, not stopped (stop() would wait for the job): a SIGKILL.
        open.splice(open.indexOf(first), 1);

        const second = queueOn(store);
        const rec = recorder();
        second.start(rec.handlers);
        await within(second.idle(), 'the interrupted job to run again');
        expect(rec.runsOf('interrupted')).toHaveLength(1);
        expect(await second.status('interrupted')).toBe('done');
      });
    });

    describe('per-group ordering', () => {
      it('jobs of one group run one at a time, in enqueue order', async () => {
        const queue = queueOn(await backend(), contractOptions({ concurrency: 8 }));
        let inGroup = 0;
        let maxInGroup = 0;
        const rec = recorder(async (job) => {
          inGroup += 1;
          maxInGroup = Math.max(maxInGroup, inGroup);
          // Later jobs finish faster: an unordered queue would show it.
          await sleep(Number((job.payload as { wait: number }).wait));
          inGroup -= 1;
        });
        queue.start(rec.handlers);
        const keys = Array.from({ length: 6 }, (_, i) => `job-${i}`);
        for (const [i, key] of keys.entries()) await queue.enqueue(newJob(key, 'upload-1', { wait: 30 - i * 5 }));
        await within(queue.idle(), 'the group to drain');
        expect(rec.runs.map((r) => r.key)).toEqual(keys);
        expect(maxInGroup).toBe(1);
        // Each starts after the previous one ended.
        for (let i = 1; i < rec.runs.length; i += 1) expect(rec.runs[i]!.startedAt).toBeGreaterThanOrEqual(rec.runs[i - 1]!.endedAt!);
      });

      it('a failing job holds back the rest of its group until it succeeds', async () => {
        const queue = queueOn(await backend(), contractOptions({ maxAttempts: 3 }));
        let failuresLeft = 2;
        const rec = recorder((job) => {
          if (job.key === 'first' && failuresLeft-- > 0) throw new Error('transient');
        });
        queue.start(rec.handlers);
        await queue.enqueue(newJob('first', 'g'));
        await queue.enqueue(newJob('second', 'g'));
        await within(queue.idle(), 'the group to drain');
        expect(rec.runs.map((r) => `${r.key}:${r.ok ? 'ok' : 'failed'}`)).toEqual(['first:failed', 'first:failed', 'first:ok', 'second:ok']);
      });

      it('a dead job lets the rest of its group run', async () => {
        const queue = queueOn(await backend(), contractOptions({ maxAttempts: 2 }));
        const rec = recorder((job) => {
          if (job.key === 'doomed') throw new Error('permanent');
        });
        queue.start(rec.handlers);
        await queue.enqueue(newJob('doomed', 'g'));
        await queue.enqueue(newJob('next', 'g'));
        await within(queue.idle(), 'the group to drain');
        expect(rec.runs.map((r) => r.key)).toEqual(['doomed', 'doomed', 'next']);
        expect(await queue.status('doomed')).toBe('dead');
        expect(await queue.status('next')).toBe('done');
      });

      it('a job enqueued while its group is busy waits for it', async () => {
        const queue = queueOn(await backend());
        const gate = latch();
        const rec = recorder((job) => (job.key === 'busy' ? gate.promise : undefined));
        queue.start(rec.handlers);
        await queue.enqueue(newJob('busy', 'g'));
        await until(() => rec.runsOf('busy').length === 1, 'the first job to start');
        await queue.enqueue(newJob('waiting', 'g'));
        await queue.enqueue(newJob('other-group', 'h'));
        await until(() => rec.runsOf('other-group').length === 1, 'a job of another group to run');
        expect(rec.runsOf('waiting')).toHaveLength(0);
        gate.release();
        await within(queue.idle(), 'the group to drain');
        expect(rec.runs.map((r) => r.key)).toEqual(['busy', 'other-group', 'waiting']);
      });
    });

    describe('retries', () => {
      it('retries a failed job with growing backoff, counting attempts and keeping the last error', async () => {
        const base = 40;
        const queue = queueOn(await backend(), contractOptions({ maxAttempts: 5, baseDelayMs: base }));
        let calls = 0;
        const rec = recorder(() => {
          calls += 1;
          if (calls <= 2) throw new Error(`failure ${calls}`);
        });
        queue.start(rec.handlers);
        await queue.enqueue(newJob('flaky'));
        await within(queue.idle(), 'the flaky job to succeed');
        const runs = rec.runsOf('flaky');
        expect(runs.map((r) => r.attempts)).toEqual([0, 1, 2]);
        expect(rec.runs.map((r) => r.lastError)).toEqual([null, 'failure 1', 'failure 2']);
        expect(rec.deaths).toHaveLength(0);
        expect(await queue.status('flaky')).toBe('done');
        // Backoff: never earlier than the policy's lower bound (base × 2^(n-1) × 0.8 jitter).
        const gap1 = runs[1]!.startedAt - runs[0]!.endedAt!;
        const gap2 = runs[2]!.startedAt - runs[1]!.endedAt!;
        expect(gap1).toBeGreaterThanOrEqual(base * 0.8 - 5);
        expect(gap2).toBeGreaterThanOrEqual(base * 2 * 0.8 - 5);
      });

      it('after maxAttempts the job is dead and dead() is called exactly once, with the last error', async () => {
        const queue = queueOn(await backend(), contractOptions({ maxAttempts: 3 }));
        const rec = recorder((job) => {
          throw new Error(`attempt ${job.attempts + 1} failed`);
        });
        queue.start(rec.handlers);
        await queue.enqueue(newJob('hopeless', 'g', { id: 'x' }));
        await within(queue.idle(), 'the job to die');
        expect(rec.runsOf('hopeless')).toHaveLength(3);
        expect(rec.deaths).toHaveLength(1);
        const death = rec.deaths[0]!;
        expect(death.job.key).toBe('hopeless');
        expect(death.job.attempts).toBe(3);
        expect(death.job.payload).toEqual({ id: 'x' });
        expect((death.error as Error).message).toBe('attempt 3 failed');
        expect(await queue.status('hopeless')).toBe('dead');
        // Nothing more happens afterwards.
        await sleep(150);
        expect(rec.runsOf('hopeless')).toHaveLength(3);
        expect(rec.deaths).toHaveLength(1);
      });

      it('a dead() handler that throws does not stop the queue', async () => {
        const queue = queueOn(await backend(), contractOptions({ maxAttempts: 1 }));
        const ran: string[] = [];
        queue.start({
          run: async (job) => {
            ran.push(job.key);
            if (job.key === 'bad') throw new Error('bad job');
          },
          dead: async () => {
            throw new Error('the dead handler broke too');
          },
        });
        await queue.enqueue(newJob('bad', 'g'));
        await queue.enqueue(newJob('good', 'g'));
        await within(queue.idle(), 'the queue to be idle');
        expect(ran).toEqual(['bad', 'good']);
        expect(await queue.status('bad')).toBe('dead');
        expect(await queue.status('good')).toBe('done');
      });
    });

    describe('concurrency', () => {
      it('jobs of different groups run at the same time', async () => {
        const queue = queueOn(await backend(), contractOptions({ concurrency: 2 }));
        const aStarted = latch();
        const bStarted = latch();
        const rec = recorder(async (job) => {
          // Each waits for the other to have started: only concurrent runs can both finish.
          if (job.group === 'A') {
            aStarted.release();
            await within(bStarted.promise, 'B to start while A runs', 3_000);
          } else {
            bStarted.release();
            await within(aStarted.promise, 'A to start while B runs', 3_000);
          }
        });
        queue.start(rec.handlers);
        await queue.enqueue(newJob('a', 'A'));
        await queue.enqueue(newJob('b', 'B'));
        await within(queue.idle(), 'both groups to finish');
        expect(rec.runs.map((r) => `${r.key}:${r.ok ? 'ok' : 'failed'}`).sort()).toEqual(['a:ok', 'b:ok']);
        expect(rec.maxRunning).toBe(2);
      });

      it('never runs more jobs of a kind at once than its concurrency', async () => {
        const queue = queueOn(await backend(), contractOptions({ concurrency: 2, hookConcurrency: 1 }));
        const rec = recorder(() => sleep(15));
        let uploads = 0;
        let maxUploads = 0;
        let hooks = 0;
        let maxHooks = 0;
        queue.start({
          run: async (job) => {
            const isUpload = job.kind === 'process-upload';
            if (isUpload) maxUploads = Math.max(maxUploads, ++uploads);
            else maxHooks = Math.max(maxHooks, ++hooks);
            try {
              await rec.handlers.run(job);
            } finally {
              if (isUpload) uploads -= 1;
              else hooks -= 1;
            }
          },
          dead: rec.handlers.dead,
        });
        for (let i = 0; i < 6; i += 1) await queue.enqueue(newJob(`u${i}`, `upload-${i}`));
        for (let i = 0; i < 4; i += 1) await queue.enqueue(newJob(`h${i}`, `hook-${i}`, {}, 'deliver-hook'));
        await within(queue.idle(), 'every job to finish');
        expect(rec.runs).toHaveLength(10);
        expect(maxUploads).toBe(2);
        expect(maxHooks).toBe(1);
      });
    });

    describe('retention of finished hook jobs (JOB_RETENTION)', () => {
      it('delivered and dead hook jobs are forgotten after the retention, also by a restarted instance; processing jobs are kept', async () => {
        const store = await backend();
        const options = contractOptions({ maxAttempts: 1, retentionMs: 300 });
        const first = queueOn(store, options);
        const rec = recorder((job) => {
          if ((job.payload as { fail?: boolean }).fail) throw new Error('receiver down');
        });
        first.start(rec.handlers);
        await first.enqueue(newJob('hook:delivered', 'hooks-a', {}, 'deliver-hook'));
        await first.enqueue(newJob('hook:dead', 'hooks-b', { fail: true }, 'deliver-hook'));
        await first.enqueue(newJob('upload-1', 'upload-1', {}, 'process-upload'));
        await within(first.idle(), 'the jobs to finish');
        // Within the retention they still make enqueue idempotent.
        expect(await first.status('hook:delivered')).toBe('done');
        expect(await first.status('hook:dead')).toBe('dead');
        expect(await first.enqueue(newJob('hook:delivered', 'hooks-a', {}, 'deliver-hook'))).toBe(false);

        await until(async () => (await first.status('hook:delivered')) === undefined && (await first.status('hook:dead')) === undefined, 'the hook jobs to be pruned');
        expect(await first.status('upload-1')).toBe('done');
        await first.stop();

        const second = queueOn(store, options);
        second.start(rec.handlers);
        expect(await second.status('hook:delivered')).toBeUndefined();
        expect(await second.status('hook:dead')).toBeUndefined();
        expect(await second.status('upload-1')).toBe('done');
        expect(await second.enqueue(newJob('upload-1', 'upload-1', {}, 'process-upload'))).toBe(false);
        await within(second.idle(), 'the restarted queue to be idle');
        expect(rec.runsOf('upload-1')).toHaveLength(1);
      });

      it('without a retention, finished hook jobs are kept', async () => {
        const queue = queueOn(await backend(), contractOptions());
        queue.start(recorder().handlers);
        await queue.enqueue(newJob('hook:kept', 'hooks', {}, 'deliver-hook'));
        await within(queue.idle(), 'the job to finish');
        await sleep(350);
        expect(await queue.status('hook:kept')).toBe('done');
      });
    });

    describe('idle() and stop()', () => {
      it('idle() resolves at once on an empty queue', async () => {
        const queue = queueOn(await backend());
        queue.start(recorder().handlers);
        await within(queue.idle(), 'idle on an empty queue');
      });

      it('idle() waits for pending, running and retrying jobs', async () => {
        const queue = queueOn(await backend(), contractOptions({ maxAttempts: 3, baseDelayMs: 30 }));
        let failedOnce = false;
        const rec = recorder(async (job) => {
          await sleep(10);
          if (job.key === 'retrying' && !failedOnce) {
            failedOnce = true;
            throw new Error('once');
          }
        });
        queue.start(rec.handlers);
        for (const key of ['x1', 'x2', 'retrying']) await queue.enqueue(newJob(key, key));
        await within(queue.idle(), 'the queue to drain');
        expect(rec.running).toBe(0);
        expect(rec.runs.filter((r) => r.ok).map((r) => r.key).sort()).toEqual(['retrying', 'x1', 'x2']);
        for (const key of ['x1', 'x2', 'retrying']) expect(await queue.status(key)).toBe('done');
      });

      it('stop() waits for running jobs, then starts no more', async () => {
        const store = await backend();
        const queue = queueOn(store);
        const gate = latch();
        const rec = recorder((job) => (job.key === 'long' ? gate.promise : undefined));
        queue.start(rec.handlers);
        await queue.enqueue(newJob('long', 'g'));
        await until(() => rec.runsOf('long').length === 1, 'the long job to start');
        let stopped = false;
        const stopping = queue.stop().then(() => {
          stopped = true;
        });
        await sleep(30);
        expect(stopped).toBe(false);
        gate.release();
        await within(stopping, 'stop() to return');
        expect(await queue.status('long')).toBe('done');

        await queue.enqueue(newJob('after-stop', 'h'));
        await sleep(50);
        expect(rec.runsOf('after-stop')).toHaveLength(0);
        expect(await queue.status('after-stop')).toBe('pending');
      });

      it('jobs enqueued before start() run once it is called', async () => {
        const queue = queueOn(await backend());
        await queue.enqueue(newJob('early'));
        const rec = recorder();
        await sleep(20);
        expect(rec.runs).toHaveLength(0);
        queue.start(rec.handlers);
        await within(queue.idle(), 'the early job to run');
        expect(rec.runsOf('early')).toHaveLength(1);
      });
    });
  });
}
