/**
 * A durable job queue: the embedded implementation keeps jobs in the storage directory;
 * a Redis implementation can stand behind the same interface for several instances.
 *
 * Guarantees every implementation must give (the contract suite checks them):
 * - enqueue is idempotent by key: a second enqueue with the same key adds nothing, whether
 *   the first is pending, done or dead;
 * - an enqueued job survives a restart and runs until it succeeds or exhausts its attempts;
 * - jobs of one group run one at a time, in enqueue order (per-upload ordering);
 * - failed attempts are retried with exponential backoff.
 */
export const JOB_KINDS = ['process-upload', 'deliver-hook'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export type NewJob = Readonly<{
  /** Idempotency key: enqueueing the same key twice runs the job once. */
  key: string;
  /** Jobs of one group run one at a time, in the order they were enqueued. */
  group: string;
  kind: JobKind;
  payload: unknown;
}>;

export type Job = NewJob &
  Readonly<{
    /** Monotonic across restarts: orders jobs within a group. */
    seq: number;
    enqueuedAt: string;
    /** Attempts made so far, 0 on the first run. */
    attempts: number;
    lastError: string | null;
  }>;

/**
 * The payload of a `process-upload` job. `streamed` is the digest computed while the bytes
 * arrived, carried in the job so whichever instance runs it skips hashing the file. Its first
 * bytes (for type detection) stay in the memory of the instance that received them: a job
 * record is a few hundred bytes, not 6 KB, and elsewhere (or after a restart) they are read.
 * Jobs written before carry them too (`head`, base64).
 */
export type ProcessUploadPayload = Readonly<{
  id: string;
  streamed?: Readonly<{ sha256: string; bytes: number; head?: string }>;
}>;

export type JobStatus = 'pending' | 'done' | 'dead';

export type RetryPolicy = Readonly<{ maxAttempts: number; baseDelayMs: number; maxDelayMs: number }>;

export type JobHandlers = Readonly<{
  /** Runs a job; throwing schedules a retry. */
  run(job: Job): Promise<void>;
  /** Called once when a job has failed its last attempt. */
  dead(job: Job, error: unknown): Promise<void>;
}>;

export interface JobQueue {
  enqueue(job: NewJob): Promise<boolean>;
  status(key: string): Promise<JobStatus | undefined>;
  start(handlers: JobHandlers): void;
  /** Stops taking jobs and waits for the ones running. */
  stop(): Promise<void>;
  /** Resolves when no job is pending or running (tests, benchmarks). */
  idle(): Promise<void>;
}

/** Exponential backoff with jitter, capped: 1 s, 2 s, 4 s... */
export function retryDelay(policy: RetryPolicy, attempts: number): number {
  const exponential = policy.baseDelayMs * 2 ** Math.max(0, attempts - 1);
  const capped = Math.min(policy.maxDelayMs, exponential);
  return Math.round(capped * (0.8 + Math.random() * 0.4));
}
