import { randomBytes } from 'node:crypto';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { isStorageFull } from '../storage/storage-errors.js';
import { JOB_KINDS, retryDelay, type Job, type JobHandlers, type JobKind, type JobQueue, type JobStatus, type NewJob, type RetryPolicy } from './job-queue.js';

export type FileJobQueueOptions = Readonly<{
  /** The queue's directory; it holds journal/ and tmp/. */
  directory: string;
  policies: Readonly<Record<JobKind, RetryPolicy>>;
  /** Jobs of each kind run at once (always from different groups). */
  concurrency: Readonly<Record<JobKind, number>>;
  logger: Logger;
  /**
   * Records written before the journal is replaced by a snapshot (when it also holds more
   * records than the state it describes).
   * @default 4096
   */
  snapshotAfter?: number;
  /**
   * How long a delivered or dead hook job (kind deliver-hook) is remembered: afterwards its key
   * is forgotten (a new enqueue of it runs again) and the next compaction drops it from disk.
   * Processing jobs are kept: their keys are upload ids, and a finished upload is processed once.
   * @default forever
   */
  retentionMs?: number;
  /**
   * How long a job waits, without using up an attempt, when storage is full (its run failed
   * with ENOSPC, or its outcome could not be written to the journal).
   * @default BOOKKEEPING_RETRY_MS
   */
  storageFullRetryMs?: number;
}>;

/**
 * One line of the journal. `job`: enqueued, or its attempts and error after a failure;
 * `done` / `dead`: finished, never to run or be enqueued again.
 */
type JournalRecord =
  | { t: 'job'; job: Job }
  | { t: 'done'; key: string; kind?: JobKind; at?: number }
  | { t: 'dead'; key: string; job?: Job; kind?: JobKind; at?: number };

/** A finished key: how it ended, its kind (when known), and when (ms), for the retention. */
type Finished = Readonly<{ state: 'done' | 'dead'; kind: JobKind | undefined; at: number }>;

/** How often finished hook jobs past their retention are looked for (at most). */
const PRUNE_INTERVAL_MS = 3600_000;

/** The journal holds delivered hook payloads: only the server's user reads it. */
const FILE_MODE = 0o600;

type Pending = Job & { notBefore: number };

/** A record waiting for its batch: applied to memory once its batch is written. */
type Appending = { record: JournalRecord; apply(): void; resolve(): void; reject(error: unknown): void };

/** The layout before the journal: one JSON file per job in pending/, done/, dead/. Read once, then removed. */
const LEGACY_STATES = ['pending', 'done', 'dead'] as const;

/**
 * Journal files, replayed in number order: `log` (appended to, one per process and snapshot),
 * `snapshot` (the whole state), `batch` (one per batch, the layout before the log; read only).
 */
const BATCH = /^(\d{12})\.(log|batch|snapshot)\.jsonl$/;

/** The log being appended to; `size`: the bytes it holds, all of them whole lines. */
type Log = { handle: FileHandle; name: string; size: number };

/** Errors after which a handle is not written again: the next batch opens a new log. */
const BROKEN_HANDLE = new Set(['EBADF', 'EIO']);

/** How long a job waits when its outcome could not be written to the journal before it runs again. */
export const BOOKKEEPING_RETRY_MS = 5_000;
const batchName = (n: number, kind: 'log' | 'snapshot') => `${String(n).padStart(12, '0')}.${kind}.jsonl`;

/**
 * The embedded queue: a journal under the storage directory (group commit). Every change
 * made while the previous batch was being written (enqueues, completions, retries, from any
 * number of callers) is appended as one write to the log file kept open in journal/ (no new
 * file, hence no inode, per batch), and each caller's promise resolves only once its bytes
 * are written. A crash mid-append leaves a torn last line, a record nobody was told about:
 * load skips it, and each process appends to a log of its own, never after a torn tail.
 * Memory holds the pending jobs and the keys that finished; enqueue is idempotent by key
 * against both. At start the latest snapshot and the files after it are replayed, so nothing
 * enqueued is lost to a restart; once the journal outgrows the state, a snapshot of it
 * (written to tmp/, renamed into journal/) replaces the older files, the log included.
 */
export function createFileJobQueue({ directory, policies, concurrency, logger, snapshotAfter = 4096, retentionMs = 0, storageFullRetryMs = BOOKKEEPING_RETRY_MS }: FileJobQueueOptions): JobQueue {
  const dir = (name: 'journal' | 'tmp' | (typeof LEGACY_STATES)[number]) => path.join(directory, name);
  const pending = new Map<string, Pending>();
  /**
   * The pending jobs of each group in seq order, groups in the order their first job became
   * runnable: the pump looks at group heads only and stops once every kind is busy, so a
   * long queue costs no scan per finished job.
   */
  const groups = new Map<string, Pending[]>();
  const pendingByKind = new Map<JobKind, number>();
  const finished = new Map<string, Finished>();
  /** Keys whose enqueue is being written: a second enqueue of one loses at once. */
  const reserved = new Set<string>();
  const running = new Map<string, Promise<void>>();
  const runningByKind = new Map<JobKind, number>();
  const busyGroups = new Set<string>();
  let handlers: JobHandlers | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pumpSoon: NodeJS.Immediate | undefined;
  let lastSeq = 0;
  let ready: Promise<void> | undefined;
  const idleWaiters: (() => void)[] = [];

  let nextBatch = 1;
  let recordsSinceSnapshot = 0;
  let appending: Appending[] = [];
  /** Opened by the first batch after load or a snapshot; only the writer loop uses it. */
  let log: Log | undefined;
  let writer: Promise<void> | undefined;
  /** A compaction was asked for (hook jobs past their retention): the writer runs it when it is free. */
  let compactDue = false;
  let pruneTimer: NodeJS.Timeout | undefined;

  const nextSeq = () => (lastSeq = Math.max(lastSeq + 1, Date.now() * 1000));

  function setPending(job: Pending): void {
    const jobs = groups.get(job.group) ?? [];
    const at = jobs.findIndex((other) => other.key === job.key);
    if (at >= 0) jobs[at] = job;
    else {
      pendingByKind.set(job.kind, (pendingByKind.get(job.kind) ?? 0) + 1);
      let index = jobs.length;
      while (index > 0 && jobs[index - 1]!.seq > job.seq) index -= 1;
      jobs.splice(index, 0, job);
      if (jobs.length === 1) groups.set(job.group, jobs);
    }
    pending.set(job.key, job);
  }

  function dropPending(key: string): void {
    const job = pending.get(key);
    if (!job) return;
    pending.delete(key);
    pendingByKind.set(job.kind, (pendingByKind.get(job.kind) ?? 1) - 1);
    const jobs = groups.get(job.group) ?? [];
    const at = jobs.findIndex((other) => other.key === key);
    if (at >= 0) jobs.splice(at, 1);
    groups.delete(job.group);
    // The group's next job waits behind the groups already waiting.
    if (jobs.length > 0) groups.set(job.group, jobs);
  }

  /** Applies one journal record to memory: the same at commit and at replay. */
  function replay(record: JournalRecord): void {
    if (record.t === 'job') {
      if (finished.has(record.job.key)) return;
      setPending({ ...record.job, notBefore: pending.get(record.job.key)?.notBefore ?? 0 });
      lastSeq = Math.max(lastSeq, record.job.seq);
    } else {
      // Records from before kinds were written: the pending job knows, else the hook dispatcher's key prefix.
      const kind = record.kind ?? (record.t === 'dead' ? record.job?.kind : undefined) ?? pending.get(record.key)?.kind ?? (record.key.startsWith('hook:') ? 'deliver-hook' : undefined);
      dropPending(record.key);
      finished.set(record.key, { state: record.t, kind, at: record.at ?? Date.now() });
    }
  }

  /** A delivered or dead hook job remembered longer than the retention. */
  const pastRetention = (entry: Finished, now = Date.now()) => retentionMs > 0 && entry.kind === 'deliver-hook' && entry.at <= now - retentionMs;

  /** How a key ended, forgetting it once past its retention. */
  function finishedState(key: string): 'done' | 'dead' | undefined {
    const entry = finished.get(key);
    if (entry && pastRetention(entry)) {
      finished.delete(key);
      return undefined;
    }
    return entry?.state;
  }

  /** Forgets every finished hook job past its retention; how many. */
  function prune(): number {
    let dropped = 0;
    const now = Date.now();
    for (const [key, entry] of finished) {
      if (!pastRetention(entry, now)) continue;
      finished.delete(key);
      dropped += 1;
    }
    return dropped;
  }

  async function writeFile(name: string, lines: string): Promise<void> {
    const temp = path.join(dir('tmp'), `${name}.${randomBytes(6).toString('hex')}`);
    try {
      await fs.writeFile(temp, lines, { mode: FILE_MODE });
      await fs.rename(temp, path.join(dir('journal'), name));
    } catch (error) {
      // A full disk (ENOSPC) leaves half a file: nothing reads tmp/, so nothing would remove it.
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** The whole state as one file; older files are removed after it is in place. */
  async function snapshot(): Promise<void> {
    prune();
    const records: JournalRecord[] = [
      ...[...finished].map(([key, { state, kind, at }]): JournalRecord => ({ t: state, key, kind, at })),
      ...[...pending.values()].map(({ notBefore: _notBefore, ...job }): JournalRecord => ({ t: 'job', job })),
    ];
    const number = nextBatch++;
    await writeFile(batchName(number, 'snapshot'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    recordsSinceSnapshot = 0;
    // Load ignores what is older than the snapshot: the next batch goes to a log after it.
    await closeLog();
    await removeBefore(number);
  }

  async function closeLog(): Promise<void> {
    const current = log;
    log = undefined;
    await current?.handle.close().catch((error: unknown) => logger.warn({ err: error, file: current.name }, 'queue log could not be closed'));
  }

  async function openLog(): Promise<Log> {
    const name = batchName(nextBatch++, 'log');
    log = { handle: await fs.open(path.join(dir('journal'), name), 'a', FILE_MODE), name, size: 0 };
    return log;
  }

  /** Appends whole lines to the log in one write (more only if the kernel writes part of them). */
  async function appendLines(lines: string): Promise<void> {
    const current = log ?? (await openLog());
    const bytes = Buffer.from(lines, 'utf8');
    let written = 0;
    try {
      while (written < bytes.length) {
        const { bytesWritten } = await current.handle.write(bytes, written, bytes.length - written);
        if (bytesWritten <= 0) throw Object.assign(new Error('the queue log took no bytes'), { code: 'EIO' });
        written += bytesWritten;
      }
      current.size += written;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Nothing written and the handle still good (a full disk): the next batch tries it again.
      if (written === 0 && !(code !== undefined && BROKEN_HANDLE.has(code))) throw error;
      // A broken handle, or part of the batch in the file: its callers are told it failed, so
      // cut it off again where possible (else a record they were refused could come back at a
      // restart); either way this log ends here, a torn line at most its last, which load skips.
      if (written > 0) await current.handle.truncate(current.size).catch(() => undefined);
      if (log === current) await closeLog();
      throw error;
    }
  }

  async function removeBefore(number: number): Promise<void> {
    for (const name of await fs.readdir(dir('journal'))) {
      const match = BATCH.exec(name);
      if (match && Number(match[1]) < number) await fs.rm(path.join(dir('journal'), name), { force: true });
    }
  }

  /** Writes everything appended so far as one batch, until nothing is left (group commit). */
  async function writeBatches(): Promise<void> {
    while (appending.length > 0 || compactDue) {
      if (appending.length === 0) {
        compactDue = false;
        await snapshot().catch((error: unknown) => logger.warn({ err: error }, 'queue compaction failed; the journal is kept as it is'));
        continue;
      }
      const batch = appending;
      appending = [];
      try {
        await appendLines(batch.map((a) => JSON.stringify(a.record)).join('\n') + '\n');
      } catch (error) {
        for (const entry of batch) entry.reject(error);
        continue;
      }
      for (const entry of batch) entry.apply();
      recordsSinceSnapshot += batch.length;
      for (const entry of batch) entry.resolve();
      if (recordsSinceSnapshot >= Math.max(snapshotAfter, pending.size + finished.size)) {
        await snapshot().catch((error: unknown) => logger.warn({ err: error }, 'queue snapshot failed; the journal is kept as it is'));
      }
    }
    writer = undefined;
  }

  /** Resolves once `record` is on disk (and applied to memory). */
  function append(record: JournalRecord, apply: () => void = () => replay(record)): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      appending.push({ record, apply, resolve, reject });
      // Let every record of this tick join the batch; later ones join the next.
      writer ??= new Promise<void>((start) => setImmediate(start)).then(writeBatches);
    });
  }

  /** Compacts the journal once the writer is free: what pruning forgot leaves the disk too. */
  function compactSoon(): void {
    compactDue = true;
    writer ??= new Promise<void>((start) => setImmediate(start)).then(writeBatches);
  }

  /** Replays a journal file; returns how many records it held. */
  async function replayFile(file: string, appended: boolean): Promise<number> {
    const lines = (await fs.readFile(file, 'utf8')).split('\n');
    // A log's last line without its newline is an append a crash cut short, never acknowledged.
    // (Batches and snapshots were renamed into place whole: damage there is logged below.)
    const torn = lines.pop();
    if (torn && appended) logger.debug({ file: path.basename(file), bytes: Buffer.byteLength(torn) }, 'torn last record of the queue log skipped');
    else if (torn) lines.push(torn);
    const records = lines.filter(Boolean);
    for (const line of records) {
      try {
        replay(JSON.parse(line) as JournalRecord);
      } catch (error) {
        logger.error({ err: error, file: path.basename(file) }, 'unreadable record left in the queue journal');
      }
    }
    return records.length;
  }

  /** A queue directory from before the journal: its jobs and finished keys join the journal once. */
  async function importLegacy(): Promise<boolean> {
    let found = false;
    for (const state of LEGACY_STATES) {
      let names: string[];
      try {
        names = await fs.readdir(dir(state));
      } catch {
        continue;
      }
      found = true;
      for (const name of names) {
        if (state !== 'pending') {
          if (name.endsWith('.json')) replay({ t: state, key: decodeURIComponent(name.slice(0, -'.json'.length)) });
          continue;
        }
        try {
          replay({ t: 'job', job: JSON.parse(await fs.readFile(path.join(dir(state), name), 'utf8')) as Job });
        } catch (error) {
          logger.error({ err: error, file: name }, 'unreadable job file left in the queue');
        }
      }
    }
    return found;
  }

  async function load(): Promise<void> {
    await Promise.all([fs.mkdir(dir('journal'), { recursive: true, mode: 0o700 }), fs.mkdir(dir('tmp'), { recursive: true, mode: 0o700 })]);
    const files = (await fs.readdir(dir('journal')))
      .map((name) => ({ name, match: BATCH.exec(name) }))
      .filter((f): f is { name: string; match: RegExpExecArray } => f.match !== null)
      .map((f) => ({ name: f.name, number: Number(f.match[1]), kind: f.match[2] }))
      .sort((a, b) => a.number - b.number);
    const from = Math.max(0, ...files.filter((f) => f.kind === 'snapshot').map((f) => f.number));
    for (const file of files) {
      nextBatch = Math.max(nextBatch, file.number + 1);
      if (file.number < from) continue; // left by a crash right after a snapshot
      recordsSinceSnapshot += await replayFile(path.join(dir('journal'), file.name), file.kind === 'log');
    }
    // This process appends to a log numbered after every file here (opened by its first batch).
    if (await importLegacy()) {
      await snapshot();
      await Promise.all(LEGACY_STATES.map((state) => fs.rm(dir(state), { recursive: true, force: true })));
    } else if (prune() > 0) {
      // Hook jobs that outlived their retention while the server was down leave the disk now.
      await snapshot();
    }
  }

  const loaded = () => (ready ??= load());

  async function status(key: string): Promise<JobStatus | undefined> {
    await loaded();
    if (pending.has(key)) return 'pending';
    return finishedState(key);
  }

  async function enqueue(newJob: NewJob): Promise<boolean> {
    await loaded();
    const { key } = newJob;
    if (pending.has(key) || finishedState(key) !== undefined || reserved.has(key)) return false;
    reserved.add(key);
    try {
      await append({ t: 'job', job: { ...newJob, seq: nextSeq(), enqueuedAt: new Date().toISOString(), attempts: 0, lastError: null } });
    } finally {
      reserved.delete(key);
    }
    schedule(0);
    return true;
  }

  async function execute(job: Pending): Promise<void> {
    const policy = policies[job.kind];
    const { notBefore: _previous, ...record } = job;
    try {
      await handlers!.run(record);
      await append({ t: 'done', key: job.key, kind: job.kind, at: Date.now() });
    } catch (error) {
      // A full disk is not the job's fault: it waits for space without using up an attempt
      // (else a disk full for a minute would end good uploads `failed`). Nothing can be written now.
      if (isStorageFull(error)) {
        logger.warn({ job: job.key, err: error, retryInMs: storageFullRetryMs }, 'job waits for storage space');
        setPending({ ...job, notBefore: Date.now() + storageFullRetryMs });
        return;
      }
      const attempts = job.attempts + 1;
      const lastError = error instanceof Error ? error.message : String(error);
      const updated: Job = { ...record, attempts, lastError };
      if (attempts >= policy.maxAttempts) {
        logger.warn({ job: job.key, attempts, err: error }, 'job failed its last attempt');
        await handlers!.dead(updated, error).catch((deadError: unknown) => logger.error({ err: deadError, job: job.key }, 'dead-job handler failed'));
        await append({ t: 'dead', key: job.key, job: updated, kind: job.kind, at: Date.now() });
        return;
      }
      const delay = retryDelay(policy, attempts);
      logger.info({ job: job.key, attempts, retryInMs: delay, error: lastError }, 'job failed; retrying');
      await append({ t: 'job', job: updated }, () => setPending({ ...updated, notBefore: Date.now() + delay }));
    }
  }

  /** Starts every runnable job: not running, due, and first of its group. */
  function pump(): void {
    timer = undefined;
    if (stopped || !handlers) return;
    const now = Date.now();
    let nextDue = Infinity;
    // A kind wants a job while it has a free slot and jobs that are not running.
    const wants = (kind: JobKind) => {
      const active = runningByKind.get(kind) ?? 0;
      return active < concurrency[kind] && (pendingByKind.get(kind) ?? 0) > active;
    };
    for (const [group, jobs] of groups) {
      if (!JOB_KINDS.some(wants)) break;
      const job = jobs[0]!;
      if (!wants(job.kind) || busyGroups.has(group) || running.has(job.key)) continue;
      if (job.notBefore > now) {
        nextDue = Math.min(nextDue, job.notBefore);
        continue;
      }
      busyGroups.add(job.group);
      runningByKind.set(job.kind, (runningByKind.get(job.kind) ?? 0) + 1);
      const run = execute(job)
        .catch((error: unknown) => {
          logger.error({ err: error, job: job.key }, 'queue bookkeeping failed');
          // Its outcome could not be written (a full disk): the job is still pending, as the
          // journal says. Later, not at once: an immediate rerun would spin as long as the disk is full.
          const current = pending.get(job.key);
          if (current) current.notBefore = Date.now() + storageFullRetryMs;
        })
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
    if (delayMs <= 0) {
      // Now means this turn of the event loop (a 0 ms timer waits a whole millisecond).
      if (pumpSoon) return;
      pumpSoon = setImmediate(() => {
        pumpSoon = undefined;
        pump();
      });
      pumpSoon.unref();
      return;
    }
    if (timer) return;
    timer = setTimeout(pump, delayMs);
    timer.unref();
  }

  return {
    enqueue,
    status,
    start(jobHandlers: JobHandlers): void {
      handlers = jobHandlers;
      stopped = false;
      if (retentionMs > 0 && !pruneTimer) {
        pruneTimer = setInterval(() => {
          if (prune() > 0) compactSoon();
        }, Math.min(retentionMs, PRUNE_INTERVAL_MS));
        pruneTimer.unref();
      }
      loaded().then(
        () => schedule(0),
        (error: unknown) => logger.error({ err: error }, 'job queue could not load'),
      );
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      clearInterval(pruneTimer);
      pruneTimer = undefined;
      clearImmediate(pumpSoon);
      pumpSoon = undefined;
      // A load still creating the queue's directories must not outlive stop().
      await ready?.catch(() => undefined);
      await Promise.all(running.values());
      while (writer) await writer;
      await closeLog();
    },
    async idle(): Promise<void> {
      await loaded();
      if (pending.size === 0 && running.size === 0) return;
      await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
