import type { Locker, Upload } from '@tus/utils';
import { HttpError } from '../errors.js';
import type { HookDispatcher } from '../hooks/hook-dispatcher.js';
import type { HookUpload } from '../hooks/types.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { UploadStorage } from '../storage/index.js';
import { removeUpload, withUploadLock } from '../uploads/remove-upload.js';
import { hookUploadOf, isComplete, isFinished, uploadStateOf } from '../uploads/upload-state.js';
import { checkDeclaredDigest, markDigestMismatch } from '../uploads/declared-digest-check.js';
import type { Job, JobQueue, ProcessUploadPayload } from './job-queue.js';
import type { Processor, StreamedDigest } from './processors/types.js';
import type { ProcessingState, ProcessorRecord, StatusRecord, StatusStore } from './status-store.js';

export type ProcessingDeps = Readonly<{
  storage: UploadStorage;
  queue: JobQueue;
  statuses: StatusStore;
  processors: readonly Processor[];
  hooks: HookDispatcher;
  logger: Logger;
  /** Delete the bytes of an upload that processing rejects. */
  deleteRejected: boolean;
  /** The upload lock the requests take (app.ts passes the app's): deleting a rejected upload holds it. Needed with deleteRejected. */
  locker?: Locker;
  /**
   * DELETE_AFTER_PROCESSING: once an upload is done and its post-process hook delivered, its
   * bytes are deleted (status and artifacts stay; GET answers 410). Needs the locker.
   */
  deleteAfterProcessing?: boolean;
  /** Counts end states and times runs (tus_processing_jobs_total, tus_processing_duration_seconds). */
  metrics?: Pick<Metrics, 'processingEnded' | 'processingDuration'>;
}>;

export const processingKey = (id: string) => `process:${id}`;

/**
 * Heads kept between the finish and the job (4 KiB each at most, 16 MiB in all: less than the
 * same jobs' payloads held when they carried them): a burst of small uploads queues thousands.
 */
const KEPT_HEADS = 4_096;

/** Where the hook dispatcher queues an upload's post-process delivery for each target (hook-dispatcher.ts's keys and groups). */
const HOOK_TARGETS = ['library', 'http'] as const;
const postProcessKey = (target: string, id: string) => `hook:${target}:post-process:${id}`;
const hookGroup = (target: string, id: string) => `hook:${target}:${id}`;

/** A process-upload job that deletes a processed upload's bytes (DELETE_AFTER_PROCESSING) rather than processing it. */
type CleanupPayload = Readonly<{ id: string; cleanup: true }>;
const isCleanup = (payload: unknown): payload is CleanupPayload => (payload as Partial<CleanupPayload>).cleanup === true;

/** The stored upload as hooks see it. */
export const hookUpload = (upload: Pick<Upload, 'id' | 'size' | 'offset' | 'metadata' | 'creation_date'>): HookUpload => hookUploadOf(uploadStateOf(upload));

/** The upload's status record vanished mid-run: it was terminated (DELETE) meanwhile. */
class UploadTerminated extends Error {
  constructor(readonly uploadId: string) {
    super(`upload ${uploadId} was terminated during processing`);
    this.name = 'UploadTerminated';
  }
}
const now = () => new Date().toISOString();
/** Writes one change of an upload's status record (see processUpload's `write`). */
type RecordWriter = (change: (current: StatusRecord) => StatusRecord) => Promise<StatusRecord>;

/**
 * Post-upload processing, durable and idempotent per upload id:
 * - `ensure(id)` enqueues it (the finish path, HEAD on a finished upload and the startup
 *   sweep all call it; the queue runs it once);
 * - `run(job)` executes the processors in order, recording each result before the next,
 *   so a restart resumes after the last recorded step; throwing retries with backoff;
 * - `dead(job)` records `failed` with the reason after the last attempt;
 * - every end state is announced through the post-process hook.
 */
export function createProcessing({ storage, queue, statuses, processors, hooks, logger, deleteRejected, locker, metrics, deleteAfterProcessing = false }: ProcessingDeps) {
  // A removal without the lock could run under a PATCH or a DELETE of the same upload.
  if (deleteRejected && !locker) throw new Error('createProcessing: deleteRejected needs the upload locker');
  if (deleteAfterProcessing && !locker) throw new Error('createProcessing: deleteAfterProcessing needs the upload locker');
  /** First bytes of uploads streamed in here, until their job runs (the least recent dropped first: then read). */
  const heads = new Map<string, Buffer>();

  /** `streamed`: the digest computed while the bytes arrived, carried durably in the job (its head in memory). */
  async function ensure(id: string, streamed?: StreamedDigest): Promise<boolean> {
    if (streamed) {
      if (heads.size >= KEPT_HEADS) heads.delete(heads.keys().next().value as string);
      heads.set(id, streamed.head);
    }
    const payload: ProcessUploadPayload = streamed ? { id, streamed: { sha256: streamed.sha256, bytes: streamed.bytes } } : { id };
    return queue.enqueue({ key: processingKey(id), group: processingKey(id), kind: 'process-upload', payload });
  }

  /**
   * A status update during a run: the record must still be there. A DELETE of the upload
   * removes it (post-terminate) while a step may still be running; writing would bring the
   * status of a terminated upload back, so the run stops instead.
   */
  function updateExisting(id: string, change: (current: StatusRecord) => StatusRecord): Promise<StatusRecord> {
    return statuses.update(id, (current) => {
      if (!current) throw new UploadTerminated(id);
      return change(current);
    });
  }

  /**
   * The first status write of a run that found no record: `fresh` changed by `change`. A DELETE
   * may have removed the upload (and deleted its record, none yet) since the run read it, so
   * the upload is looked up *after* the write: gone, the record goes again and the run stops.
   * Either the DELETE's removal came before that look-up, or its own deletion of the record
   * (which follows the removal) comes after this write; the record never outlives the upload.
   */
  async function createRecord(id: string, fresh: StatusRecord, change: (current: StatusRecord) => StatusRecord): Promise<StatusRecord> {
    const record = await statuses.update(id, (current) => change(current ?? fresh));
    try {
      await storage.getUpload(id);
    } catch (error) {
      if (!(error instanceof HttpError && (error.code === 'ERR_UPLOAD_NOT_FOUND' || error.code === 'ERR_UPLOAD_GONE'))) throw error;
      await statuses.delete(id);
      throw new UploadTerminated(id);
    }
    return record;
  }

  /**
   * An end state: recorded, announced (post-process), then marked settled beside the upload,
   * in that order. A crash before the marker leaves the upload to the reconcile, which finds
   * the record settled and finishes the announcement (the queue's key makes it once per
   * queue); once marked, no instance, new or restarted, touches the upload again.
   * `stored: false` when the upload's bytes are gone: a marker would outlive them.
   */
  async function settle(
    id: string,
    upload: HookUpload,
    state: Exclude<ProcessingState, 'processing'>,
    error: string | null,
    {
      mustExist = false,
      stored = true,
      processors: unrecorded = {},
      write,
    }: { mustExist?: boolean; stored?: boolean; processors?: Readonly<Record<string, ProcessorRecord>>; write?: RecordWriter } = {},
  ): Promise<StatusRecord> {
    const change = (current: StatusRecord | undefined): StatusRecord => ({
      id,
      ...current,
      processors: { ...current?.processors, ...unrecorded },
      state,
      error,
      updatedAt: now(),
    });
    const record = await (write ? write(change) : mustExist ? updateExisting(id, change) : statuses.update(id, change));
    const results = Object.fromEntries(Object.entries(record.processors).map(([name, p]) => [name, p.ok ? p.result : { error: p.error }]));
    await hooks.notify('post-process', { type: 'post-process', upload, request: null, processing: { state, results, error } }, `post-process:${id}`);
    if (stored) await storage.markSettled(id);
    return record;
  }

  /**
   * Queues the deletion of a done upload's bytes behind its post-process deliveries: one job in
   * each target's hook group (the queue runs a group's jobs in order, on one instance at a
   * time), or behind this processing job when no hook is configured. Idempotent by key.
   */
  async function scheduleCleanup(id: string): Promise<void> {
    const queued = [];
    for (const target of HOOK_TARGETS) if ((await queue.status(postProcessKey(target, id))) !== undefined) queued.push(hookGroup(target, id));
    const groups = queued.length > 0 ? queued : [processingKey(id)];
    for (const group of groups) {
      const payload: CleanupPayload = { id, cleanup: true };
      await queue.enqueue({ key: `cleanup:${group}`, group, kind: 'process-upload', payload });
    }
  }

  /**
   * Deletes the bytes once every post-process delivery of the upload is done. A delivery still
   * pending has its own cleanup job behind it, which does it; a dead one (its receiver never
   * acknowledged) keeps the bytes, so the results can still be had from the file.
   */
  async function cleanup(id: string): Promise<void> {
    for (const target of HOOK_TARGETS) {
      const delivery = await queue.status(postProcessKey(target, id));
      if (delivery === 'pending') return;
      if (delivery === 'dead') {
        logger.warn({ uploadId: id, target }, 'post-process hook was never delivered; the bytes are kept (DELETE_AFTER_PROCESSING)');
        return;
      }
    }
    const status = await statuses.get(id);
    if (status?.state !== 'done') return;
    // The record answers for the upload from now on: it must say whose it is (ownership of the status and poster).
    const upload = await storage.getUpload(id).catch(() => undefined);
    const owner = upload ? uploadStateOf(upload).owner : undefined;
    if (owner !== undefined && status.owner !== owner) await updateExisting(id, (current) => ({ ...current, owner }));
    await withUploadLock(locker as Locker, id, () => storage.discardBytes(id));
    logger.info({ uploadId: id }, 'processed upload deleted; its status and poster are kept (DELETE_AFTER_PROCESSING)');
  }

  async function run(job: Job): Promise<void> {
    if (isCleanup(job.payload)) return cleanup(job.payload.id);
    const stopTimer = metrics?.processingDuration.startTimer();
    try {
      await processUpload(job);
    } catch (error) {
      if (!(error instanceof UploadTerminated)) throw error;
      logger.info({ uploadId: error.uploadId }, 'upload terminated during processing; stopped');
    } finally {
      stopTimer?.();
    }
  }

  async function processUpload(job: Job): Promise<void> {
    const { id, streamed: carried } = job.payload as ProcessUploadPayload;
    // Without the head (another instance, a restart), type detection reads the file's first bytes.
    const head = carried?.head !== undefined ? Buffer.from(carried.head, 'base64') : (heads.get(id) ?? Buffer.alloc(0));
    heads.delete(id);
    const streamed = carried ? { sha256: carried.sha256, bytes: carried.bytes, head } : undefined;
    let upload: Upload;
    try {
      upload = await storage.getUpload(id);
    } catch (error) {
      // Terminated or expired before processing ran: nothing left to process.
      if (error instanceof HttpError && (error.code === 'ERR_UPLOAD_NOT_FOUND' || error.code === 'ERR_UPLOAD_GONE')) {
        const left = await statuses.get(id);
        if (left?.state === 'processing' && left.error) {
          // A rejection whose bytes were deleted (DELETE_REJECTED) before a crash: finish it.
          await settle(id, { id, size: null, offset: 0, metadata: {}, createdAt: null }, 'rejected', left.error, { mustExist: true, stored: false });
          return;
        }
        // A record still "processing" was written while the upload was being terminated: drop it.
        if (left?.state === 'processing') await statuses.delete(id);
        logger.info({ uploadId: id }, 'upload removed before processing; skipped');
        return;
      }
      throw error;
    }
    const state = uploadStateOf(upload);
    if (!isFinished(state)) throw new Error(`upload ${id} is not finished (${upload.offset} of ${upload.size ?? '?'} bytes)`);
    // A partial upload of a concatenation is a piece: its final upload is processed.
    if (!isComplete(state)) {
      logger.info({ uploadId: id }, 'partial upload: processed with its final upload; skipped');
      return;
    }
    // Settled and announced already, by this instance or the one it replaced: nothing to redo,
    // not even a hook (a new instance's queue does not know the keys of the old one's).
    if (await storage.isSettled(id)) {
      logger.info({ uploadId: id }, 'upload already processed; skipped');
      // A crash between the end state and queueing the cleanup: queue it now (idempotent).
      if (deleteAfterProcessing && (await statuses.get(id))?.state === 'done') await scheduleCleanup(id);
      return;
    }
    // The declared digest is checked by the finish path; an upload found by the sweep or a HEAD
    // (its finishing request failed, or the server died before the check) is checked here,
    // before any hook: the finish path's digest travels in the job, so this reads nothing then.
    const checked = await checkDeclaredDigest(storage, state, streamed);
    if (checked.mismatch) {
      logger.warn({ uploadId: id }, 'declared digest does not match the stored bytes; not processed');
      await markDigestMismatch(storage, statuses, id, checked.mismatch);
      return;
    }
    const info = hookUpload(upload);
    // The finish path queues post-finish; make sure of it here too, for uploads found by the sweep.
    await hooks.notify('post-finish', { type: 'post-finish', upload: info, request: null }, `post-finish:${id}`);

    const found = await statuses.get(id);
    if (found && found.state !== 'processing') {
      // Already settled (say by a pre-finish rejection, or before a crash): only make sure it was announced.
      await settle(id, info, found.state, found.error);
      return;
    }
    // A step rejected the upload before a restart: finish the rejection, never run on to done.
    if (found?.error) return reject(id, info, found.error);
    // The owner travels with the record: a rejected upload's status stays its owner's after DELETE_REJECTED removed the bytes.
    const owner = state.owner ? { owner: state.owner } : {};
    let status: StatusRecord = { id, processors: {}, error: null, ...found, ...owner, state: 'processing', updatedAt: now() };
    /**
     * The run's record is written before the first step that is not quick, with a result that
     * must be kept (a rejection), or with the end state, whichever comes first: a small upload
     * is processed in one status write. A run that found a record (resumed after a restart)
     * updates it.
     */
    let exists = found !== undefined;
    const write: RecordWriter = async (change) => {
      if (exists) return updateExisting(id, change);
      const record = await createRecord(id, status, change);
      exists = true;
      return record;
    };

    const size = upload.size as number;
    const metadata = info.metadata;
    /**
     * Results of quick steps (not wanted, or answered at once: see Processor.quick) are written
     * with the next write or the end state, not one write each (a small upload once took
     * seven), and after a crash they are recomputed for nothing. Before any other step runs
     * they are written (the status shows them while it runs, a kill keeps them), and so is its
     * own result: a restart resumes after real work.
     */
    let unrecorded: Record<string, ProcessorRecord> = {};
    const record = (change: (current: StatusRecord) => StatusRecord) => {
      const merged = unrecorded;
      unrecorded = {};
      return write((current) => change({ ...current, processors: { ...current.processors, ...merged } }));
    };
    for (const processor of processors) {
      const done = status.processors[processor.name];
      if (done?.ok) continue;
      const previous = Object.fromEntries(Object.entries({ ...status.processors, ...unrecorded }).map(([name, p]) => [name, p.result]));
      if (processor.wants && !processor.wants({ id, size, metadata, previous })) {
        unrecorded[processor.name] = { ok: true, result: { skipped: 'not wanted' }, at: now() };
        continue;
      }
      const digest = checked.digest ?? streamed;
      const quick = processor.quick?.({ size, metadata, previous, streamed: digest }) ?? false;
      if (!quick && (!exists || Object.keys(unrecorded).length > 0)) status = await record((current) => ({ ...current, updatedAt: now() }));
      let outcome;
      try {
        outcome = await processor.run({ id, size, metadata, read: (range) => storage.read(id, range), streamed: digest, previous });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        await record((current) => ({
          ...current,
          processors: { ...current.processors, [processor.name]: { ok: false, error: message, at: now() } },
          updatedAt: now(),
        }));
        throw error;
      }
      const result: ProcessorRecord = { ok: true, result: outcome.result, at: now() };
      // The step's result and its rejection are recorded together, so a restart after this
      // point finishes the rejection instead of skipping the step and running on to done.
      const rejection = outcome.reject ?? null;
      if (rejection === null && quick) {
        unrecorded[processor.name] = result;
        continue;
      }
      status = await record((current) => ({
        ...current,
        processors: { ...current.processors, [processor.name]: result },
        ...(rejection !== null ? { error: rejection } : {}),
        updatedAt: now(),
      }));
      if (rejection !== null) {
        logger.warn({ uploadId: id, processor: processor.name, reason: rejection }, 'upload rejected by processing');
        return reject(id, info, rejection);
      }
    }
    await settle(id, info, 'done', null, { write, processors: unrecorded });
    metrics?.processingEnded('done');
    logger.info({ uploadId: id, size }, 'upload processed');
    if (deleteAfterProcessing) await scheduleCleanup(id);
  }

  /** Ends a rejected upload: its bytes go first (DELETE_REJECTED), so "rejected" means they are gone. */
  async function reject(id: string, info: HookUpload, reason: string): Promise<void> {
    if (deleteRejected && locker) {
      // Under the upload's lock, as any removal; already gone (deleted before a restart) is fine.
      await removeUpload(storage, locker, id).catch((error: unknown) => logger.error({ err: error, uploadId: id }, 'could not delete a rejected upload'));
    }
    await settle(id, info, 'rejected', reason, { mustExist: true, stored: !deleteRejected });
    metrics?.processingEnded('rejected');
  }

  async function dead(job: Job, error: unknown): Promise<void> {
    const { id } = job.payload as { id: string };
    if (isCleanup(job.payload)) {
      logger.error({ err: error, uploadId: id }, 'could not delete a processed upload (DELETE_AFTER_PROCESSING); its bytes are kept');
      return;
    }
    const reason = `processing failed after ${job.attempts} attempts: ${error instanceof Error ? error.message : String(error)}`;
    const upload = await storage.getUpload(id).catch(() => undefined);
    const info = upload ? hookUpload(upload) : { id, size: null, offset: 0, metadata: {}, createdAt: null };
    await settle(id, info, 'failed', reason, { stored: upload !== undefined });
    metrics?.processingEnded('failed');
  }

  /**
   * Queues processing for every finished upload that has none: run at startup and periodically.
   * It visits only uploads without a settled marker (one listing), so its cost follows the
   * unfinished and unprocessed uploads, not every upload ever stored.
   */
  async function reconcile(): Promise<number> {
    let queued = 0;
    const candidates = await storage.listUnsettled();
    for (const id of candidates) {
      try {
        const upload = await storage.getUpload(id);
        if (!isComplete(uploadStateOf(upload))) continue;
        const job = await queue.status(processingKey(id));
        if (job === undefined) {
          if (await ensure(id)) {
            logger.info({ uploadId: id }, 'finished upload without processing found; queued');
            queued += 1;
          }
        } else if (job !== 'pending') {
          // Processed by this queue before settled markers existed (or the marker write failed):
          // mark it from its record, so later sweeps skip it.
          const status = await statuses.get(id);
          if (status && status.state !== 'processing') await storage.markSettled(id);
        }
      } catch (error) {
        logger.warn({ err: error, uploadId: id }, 'processing sweep skipped an upload');
      }
    }
    logger.debug({ visited: candidates.length, queued }, 'processing sweep done');
    return queued;
  }

  return { ensure, run, dead, reconcile };
}

export type Processing = ReturnType<typeof createProcessing>;
