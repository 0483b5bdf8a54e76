import type { Locker } from '@tus/utils';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { UploadStorage } from '../storage/index.js';
import { isComplete, isExpired, uploadStateOf } from '../uploads/upload-state.js';

export type ExpirySweeperDeps = Readonly<{
  storage: UploadStorage;
  locker: Locker;
  logger: Logger;
  expiryMs: number;
  intervalMs: number;
  /** Other periodic housekeeping that rides on the same timer (the processing sweep). */
  afterSweep?: () => Promise<void>;
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
export function createExpirySweeper({ storage, locker, logger, expiryMs, intervalMs, afterSweep, metrics }: ExpirySweeperDeps) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;

  async function expireIfDue(id: string, now: number): Promise<boolean> {
    if (!isExpired(uploadStateOf(await storage.getUpload(id)), expiryMs, now)) return false;

    const lock = locker.newLock(id);
    await lock.lock(AbortSignal.timeout(LOCK_WAIT_MS), () => undefined);
    try {
      // Read again under the lock: the last PATCH may have finished it meanwhile.
      const current = await storage.getUpload(id);
      if (isComplete(uploadStateOf(current))) return false;
      await storage.expire(id);
      metrics?.uploadsExpired.inc();
      logger.info({ uploadId: id, offset: current.offset, size: current.size }, 'expired unfinished upload removed');
      return true;
    } finally {
      await lock.unlock();
    }
  }

  async function sweep(): Promise<number> {
    if (expiryMs <= 0) return 0;
    const now = Date.now();
    let removed = 0;
    // Only uploads that may be unfinished (S3: multipart uploads in progress; file storage:
    // those without a settled marker): finished, processed uploads cost the sweep nothing.
    for (const id of await storage.listUnfinished()) {
      try {
        if (await expireIfDue(id, now)) removed += 1;
      } catch (error) {
        logger.warn({ err: error, uploadId: id }, 'expiry sweep skipped an upload');
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
