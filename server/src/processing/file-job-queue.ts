import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { retryDelay, type Job, type JobHandlers, type JobKind, type JobQueue, type JobStatus, type NewJob, type RetryPolicy } from './job-queue.js';

export type FileJobQueueOptions = Readonly<{
  /** The queue's directory; it holds pending/, done/ and dead/. */
  directory: string;
  policies: Readonly<Record<JobKind, RetryPolicy>>;
  /** Jobs of each kind run at once (always from different groups). */
  concurrency: Readonly<Record<JobKind, number>>;
  logger: Logger;
}>;

const STATES = ['pending', 'done', 'dead'] as const satisfies readonly JobStatus[];

/** Keys become file names: keep them reversible and free of path tricks. */
const fileName = (key: string) => `${encodeURIComponent(key).replace(/\./g, '%2E')}.json`;

/**
 * The embedded queue: one JSON file per job under the storage directory, moved from
 * pending/ to done/ or dead/ by rename. A job file is written to a temporary name and
 * linked into pending/, so a crash leaves either no job or a whole one, and the link
 * fails if the key already exists (idempotent enqueue). Pending jobs are read back at
 * start, so nothing enqueued is lost to a restart.
 */
export function createFileJobQueue({ directory, policies, concurrency, logger }: FileJobQueueOptions): JobQueue {
  const dir = (state: JobStatus | 'tmp') => path.join(directory, state);
  const pending = new Map<string, Job & { notBefore: number }>();
  const running = new Map<string, Promise<void>>();
  const runningByKind = new Map<JobKind, number>();
  const busyGroups = new Set<string>();
  let handlers: JobHandlers | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lastSeq = 0;
  let ready: Promise<void> | undefined;
  const idleWaiters: (() => void)[] = [];

  const nextSeq = () => (lastSeq = Math.max(lastSeq + 1, Date.now() * 1000));

  async function writeAtomically(file: string, job: Job): Promise<void> {
    const temp = path.join(dir('tmp'), `${path.basename(file)}.${randomBytes(6).toString('hex')}`);
    await fs.writeFile(temp, JSON.stringify(job));
    await fs.rename(temp, file);
  }

  async function load(): Promise<void> {
    await Promise.all([...STATES, 'tmp' as const].map((state) => fs.mkdir(dir(state), { recursive: true })));
    for (const name of await fs.readdir(dir('pending'))) {
      try {
        const job = JSON.parse(await fs.readFile(path.join(dir('pending'), name), 'utf8')) as Job;
        pending.set(job.key, { ...job, notBefore: 0 });
        lastSeq = Math.max(lastSeq, job.seq);
      } catch (error) {
        logger.error({ err: error, file: name }, 'unreadable job file left in the queue');
      }
    }
  }

  const loaded = () => (ready ??= load());

  async function status(key: string): Promise<JobStatus | undefined> {
    await loaded();
    if (pending.has(key)) return 'pending';
    for (const state of STATES) {
      try {
        await fs.access(path.join(dir(state), fileName(key)));
        return state;
      } catch {
        // not in this state
      }
    }
    return undefined;
  }

  async function enqueue(newJob: NewJob): Promise<boolean> {
    await loaded();
    if ((await status(newJob.key)) !== undefined) return false;
    const job: Job = { ...newJob, seq: nextSeq(), enqueuedAt: new Date().toISOString(), attempts: 0, lastError: null };
    const temp = path.join(dir('tmp'), `${fileName(job.key)}.${randomBytes(6).toString('hex')}`);
    await fs.writeFile(temp, JSON.stringify(job));
    try {
      // link() refuses an existing name: two enqueues of one key cannot both win.
      await fs.link(temp, path.join(dir('pending'), fileName(job.key)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await fs.rm(temp, { force: true });
    }
    pending.set(job.key, { ...job, notBefore: 0 });
    schedule(0);
    return true;
  }

  async function finish(job: Job, state: 'done' | 'dead'): Promise<void> {
    await writeAtomically(path.join(dir(state), fileName(job.key)), job);
    await fs.rm(path.join(dir('pending'), fileName(job.key)), { force: true });
    pending.delete(job.key);
  }

  async function execute(job: Job & { notBefore: number }): Promise<void> {
    const policy = policies[job.kind];
    try {
      await handlers!.run(job);
      await finish(job, 'done');
    } catch (error) {
      const attempts = job.attempts + 1;
      const lastError = error instanceof Error ? error.message : String(error);
      const updated = { ...job, attempts, lastError };
      if (attempts >= policy.maxAttempts) {
        logger.warn({ job: job.key, attempts, err: error }, 'job failed its last attempt');
        await handlers!.dead(updated, error).catch((deadError: unknown) => logger.error({ err: deadError, job: job.key }, 'dead-job handler failed'));
        await finish(updated, 'dead');
        return;
      }
      const delay = retryDelay(policy, attempts);
      logger.info({ job: job.key, attempts, retryInMs: delay, error: lastError }, 'job failed; retrying');
      const { notBefore: _previous, ...record } = updated;
      await writeAtomically(path.join(dir('pending'), fileName(job.key)), record);
      pending.set(job.key, { ...updated, notBefore: Date.now() + delay });
    }
  }

  /** Starts every runnable job: not running, due, and first of its group. */
  function pump(): void {
    timer = undefined;
    if (stopped || !handlers) return;
    const firstOfGroup = new Map<string, Job & { notBefore: number }>();
    for (const job of pending.values()) {
      const first = firstOfGroup.get(job.group);
      if (!first || job.seq < first.seq) firstOfGroup.set(job.group, job);
    }
    const now = Date.now();
    let nextDue = Infinity;
    for (const job of [...firstOfGroup.values()].sort((a, b) => a.seq - b.seq)) {
      if ((runningByKind.get(job.kind) ?? 0) >= concurrency[job.kind]) continue;
      if (busyGroups.has(job.group) || running.has(job.key)) continue;
      if (job.notBefore > now) {
        nextDue = Math.min(nextDue, job.notBefore);
        continue;
      }
      busyGroups.add(job.group);
      runningByKind.set(job.kind, (runningByKind.get(job.kind) ?? 0) + 1);
      const run = execute(job)
        .catch((error: unknown) => logger.error({ err: error, job: job.key }, 'queue bookkeeping failed'))
        .finally(() => {
          running.delete(job.key);
          runningByKind.set(job.kind, (runningByKind.get(job.kind) ?? 1) - 1);
          busyGroups.delete(job.group);
          schedule(0);
          if (pending.size === 0 && running.size === 0) idleWaiters.splice(0).forEach((wake) => wake());
        });
      running.set(job.key, run);
    }
    if (nextDue !== Infinity) schedule(nextDue - now);
  }

  function schedule(delayMs: number): void {
    if (stopped || !handlers) return;
    if (timer && delayMs > 0) return;
    clearTimeout(timer);
    timer = setTimeout(pump, Math.max(0, delayMs));
    timer.unref();
  }

  return {
    enqueue,
    status,
    start(jobHandlers: JobHandlers): void {
      handlers = jobHandlers;
      stopped = false;
      loaded().then(
        () => schedule(0),
        (error: unknown) => logger.error({ err: error }, 'job queue could not load'),
      );
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      // A load still creating the queue's directories must not outlive stop().
      await ready?.catch(() => undefined);
      await Promise.all(running.values());
    },
    async idle(): Promise<void> {
      await loaded();
      if (pending.size === 0 && running.size === 0) return;
      await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
