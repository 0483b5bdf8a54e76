import type { Locker } from '@tus/utils';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { UploadStorage } from '../storage/index.js';
import { isExpired, isPastRetention, uploadStateOf, type UploadState } from '../uploads/upload-state.js';

export type ExpirySweeperDeps = Readonly<{
  storage: UploadStorage;
  locker: Locker;
  logger: Logger;
  expiryMs: number;
  intervalMs: number;
  /** Other periodic housekeeping that rides on the same timer (the processing sweep). */
  afterSweep?: () => Promise<void>;
  /** Finished uploads older than this (from creation) are removed too (FINISHED_UPLOAD_RETENTION); 0 keeps them. @default 0 */
  finishedRetentionMs?: number;
  /** Told of every upload removed (the core frees its creator's limits). */
  onRemoved?: (id: string) => void;
  /** Counts the uploads removed (tus_uploads_expired_total). */
  metrics?: Pick<Metrics, 'uploadsExpired'>;
}>;

const LOCK_WAIT_MS = 10_000;

/**
 * Removes unfinished uploads older than UPLOAD_EXPIRY, on a timer, without anyone
 * calling it. @tus/file-store's own deleteExpired would also delete *finished* uploads
 * (it compares the declared size with the offset recorded at creation), so we decide
 * from the stored bytes instead. Each removal holds the upload's lock, so an upload
 * that is being written is never deleted under a PATCH.
 */
export function createExpirySweeper({ storage, locker, logger, expiryMs, intervalMs, afterSweep, metrics, finishedRetentionMs = 0, onRemoved }: ExpirySweeperDeps) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;

  /** The two rules the sweep applies: unfinished past UPLOAD_EXPIRY, finished past FINISHED_UPLOAD_RETENTION. */
  const RULES = {
    expired: { due: (state: UploadState, now: number) => isExpired(state, expiryMs, now), message: 'expired unfinished upload removed' },
    retention: { due: (state: UploadState, now: number) => isPastRetention(state, finishedRetentionMs, now), message: 'finished upload past its retention removed' },
  } as const;

  async function expireIfDue(id: string, now: number, rule: keyof typeof RULES = 'expired'): Promise<boolean> {
    const { due, message } = RULES[rule];
    if (!due(uploadStateOf(await storage.getUpload(id)), now)) return false;

    const lock = locker.newLock(id);
    await lock.lock(AbortSignal.timeout(LOCK_WAIT_MS), () => undefined);
    try {
      // Read again under the lock: the last PATCH may have finished it meanwhile.
      const current = await storage.getUpload(id);
      if (!due(uploadStateOf(current), now)) return false;
      await storage.expire(id);
      if (rule === 'expired') metrics?.uploadsExpired.inc();
      onRemoved?.(id);
      logger.info({ uploadId: id, offset: current.offset, size: current.size }, message);
      return true;
    } finally {
      await lock.unlock();
    }
  }

  async function sweep(): Promise<number> {
    const now = Date.now();
    let removed = 0;
    // Only uploads that may be unfinished (S3: multipart uploads in progress; file storage:
    // those without a settled marker): finished, processed uploads cost the sweep nothing...
    const unfinished = expiryMs > 0 ? await storage.listUnfinished() : [];
    // ...unless a retention is set: then every upload is looked at (one read each).
    const all = finishedRetentionMs > 0 ? await storage.listUploadIds() : [];
    for (const [ids, rule] of [[unfinished, 'expired'], [all, 'retention']] as const) {
      for (const id of ids) {
        try {
          if (await expireIfDue(id, now, rule)) removed += 1;
        } catch (error) {
          logger.warn({ err: error, uploadId: id }, 'expiry sweep skipped an upload');
        }
      }
    }
    return removed;
  }

  /** Runs one sweep; concurrent callers share the sweep in progress. */
  function sweepOnce(): Promise<number> {
    running ??= sweep().finally(() => {
      running = undefined;
    });
    return running;
  }

  return {
    sweepOnce,
    start(): void {
      if (timer) return;
      timer = setInterval(() => {
        sweepOnce()
          .then(() => afterSweep?.())
          .catch((error: unknown) => logger.error({ err: error }, 'periodic sweep failed'));
      }, intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      clearInterval(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}

export type ExpirySweeper = ReturnType<typeof createExpirySweeper>;
