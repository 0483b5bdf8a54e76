import type { Config } from '../config.js';
import { HttpError } from '../errors.js';
import { applyCreationRules } from '../hooks/creation-rules.js';
import type { HookDispatcher } from '../hooks/hook-dispatcher.js';
import { limitSubject, type Limits } from '../limits/limits.js';
import type { HookRequest, HookUpload } from '../hooks/types.js';
import type { ServerLifecycle } from '../http/lifecycle.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Processing } from '../processing/processing-service.js';
import type { StreamedDigest } from '../processing/processors/types.js';
import type { StatusStore } from '../processing/status-store.js';
import type { UploadStorage } from '../storage/index.js';
import type { FreeSpace } from '../storage/free-space.js';
import { checkDeclaredDigest, markDigestMismatch } from './declared-digest-check.js';
import { createConcatenation } from './concatenation.js';
import type { Actor } from './actor.js';
import { mayAccess } from './ownership.js';
import { markRejected } from './rejection.js';
import { joinStoredMetadata } from './stored-metadata.js';
import { checkSameProtocol, type UploadProtocol } from './upload-protocol.js';
import { createStreamingDigests } from './streaming-digest.js';
import type { UploadLocker } from './upload-locker.js';
import { hookUploadOf, isComplete, isExpired, isFinished, uploadStateOf, type UploadState } from './upload-state.js';

export type UploadCoreDeps = Readonly<{
  config: Config;
  storage: UploadStorage;
  locker: UploadLocker;
  hooks: HookDispatcher;
  processing: Processing;
  statuses: StatusStore;
  lifecycle: ServerLifecycle;
  logger: Logger;
  /** Counts creations, finishes and terminations; optional so a core built without metrics (tests) works. */
  metrics?: Pick<Metrics, 'uploadsCreated' | 'uploadsFinished' | 'uploadsTerminated'>;
  /** Refuses new uploads while storage is low (MIN_FREE_SPACE). */
  freeSpace?: FreeSpace;
  /** Per-subject creation limits; none without. */
  limits?: Limits;
}>;

/** What the finish path decided: the front-end answers with it. */
export type FinishOutcome = Readonly<{ rejected?: HttpError; failure?: unknown }>;

/** How many ids `ensureProcessed` remembers as already queued in this process. */
const ENSURED_MEMORY = 10_000;

export const uploadNotFound = () => new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found');
export const uploadGone = () => new HttpError('ERR_UPLOAD_GONE', 'the upload expired and its data was removed; start a new upload');
const uploadStopped = () => new HttpError('ERR_UPLOAD_STOPPED', 'this upload was stopped by the server and takes no more bytes');

/**
 * The protocol-neutral upload core: every rule about an upload lives here once (finished,
 * expired, creation rules, the stop flag, hooks, processing), and the protocol front-ends
 * (tus 1.0 on @tus/server today) only translate HTTP into these calls and back.
 * Inputs and outputs are plain data: an UploadState, a HookRequest, never a Request.
 */
export function createUploadCore({ config, storage, locker, hooks, processing, statuses, lifecycle, logger, freeSpace, metrics, limits }: UploadCoreDeps) {
  const expiryMs = config.tus.uploadExpiryMs;
  /** Ids whose processing this process already queued: a HEAD poll on a finished upload costs no queue write. */
  const ensured = new Set<string>();
  /** sha256 and first bytes computed as bodies stream in (the front-ends tap their bodies), so processing need not read the file. */
  const digests = createStreamingDigests();

  /** Queues processing of a finished upload, once (the queue is idempotent by id; this spares it the round trip). */
  async function ensureProcessed(id: string, streamed?: StreamedDigest): Promise<void> {
    if (ensured.has(id)) return;
    await processing.ensure(id, streamed);
    if (ensured.size >= ENSURED_MEMORY) ensured.delete(ensured.values().next().value as string);
    ensured.add(id);
  }

  /** The stored state; 404 for an unknown id, 410 for one that expired (swept or not yet). */
  async function stateOf(id: string, actor?: Actor): Promise<UploadState> {
    const state = uploadStateOf(await storage.getUpload(id));
    // Ownership before expiry: another subject learns nothing, not even that the id expired.
    if (!mayAccess(state, actor)) throw uploadNotFound();
    if (isExpired(state, expiryMs)) throw uploadGone();
    return state;
  }

  /**
   * Offset retrieval (tus HEAD). A request that is still writing holds the upload's lock:
   * it is asked to let go, so the answer includes every byte it received, but the lock is
   * never taken, so any number of readers answer together.
   */
  async function currentState(id: string, signal?: AbortSignal, actor?: Actor): Promise<UploadState> {
    // Another subject's upload is not there for this actor: no release request to its writer either.
    if (actor) await stateOf(id, actor);
    await locker.waitUntilFree(id, signal);
    const state = await stateOf(id, actor);
    // A client that saw its finishing request fail learns here that the upload is complete;
    // make sure its processing is queued (idempotent) before saying so.
    if (isComplete(state)) {
      await ensureProcessed(id).catch((error: unknown) => logger.error({ err: error, uploadId: id }, 'could not queue processing'));
    }
    return state;
  }

  /**
   * Creation: the configured rules, then the pre-create hook. Returns the record to store:
   * the metadata (the hook's, if it set some) with the core's facts beside it.
   */
  async function beforeCreate(upload: UploadState, request: HookRequest, actor?: Actor): Promise<Record<string, string | null>> {
    // The limits first: a client over them costs no rule and no hook. A creation that fails later frees its count.
    const subject = limitSubject(actor?.subject ?? request.subject, { remoteAddress: request.remoteAddress, forwardedFor: request.headers['x-forwarded-for'] }, config.server.trustProxy);
    await limits?.admitCreation(subject, upload.id, upload.length, isFinished(upload));
    return creationRecord(upload, request, actor).catch((error: unknown) => {
      release(upload.id);
      throw error;
    });
  }

  async function creationRecord(upload: UploadState, request: HookRequest, actor?: Actor): Promise<Record<string, string | null>> {
    // Low on space: no new upload starts (507), so the ones in progress can finish.
    await freeSpace?.refuseNewUploadIfLow();
    const info = hookUploadOf(upload);
    const ruled = applyCreationRules(config.validation, info.metadata);
    const result = await hooks.runBlocking('pre-create', { type: 'pre-create', upload: { ...info, metadata: ruled }, request });
    const metadata = result.metadata ?? ruled;
    // A binary value stays binary while its base64 is unchanged; a value a hook or a rule wrote is text.
    const binaryKeys = upload.binaryKeys.filter((key) => metadata[key] === upload.metadata[key]);
    // Recorded with the upload, out of the client's reach: who created it owns it.
    return joinStoredMetadata({ ...upload, metadata, binaryKeys, owner: actor?.subject });
  }

  function notify(type: 'post-create' | 'post-receive', upload: UploadState, request: HookRequest | null, key: string): void {
    hooks
      .notify(type, { type, upload: hookUploadOf(upload), request }, key)
      .catch((error: unknown) => logger.error({ err: error, uploadId: upload.id }, `could not queue ${type}`));
  }

  /** post-create, queued durably (the front-end flushes it before the client hears of the upload). */
  function created(upload: UploadState, request: HookRequest): void {
    metrics?.uploadsCreated.inc();
    // A new random id has no status record. (A final upload's id is derived from its parts: it may have one.)
    if (upload.concat.kind !== 'final') statuses.noRecordFor?.(upload.id);
    notify('post-create', upload, request, `post-create:${upload.id}`);
  }

  /** post-receive, rate-limited by the front-end's engine; only called when `wantsProgress`. */
  function received(upload: UploadState): void {
    notify('post-receive', upload, null, `post-receive:${upload.id}:${upload.offset}`);
  }

  /**
   * Before bytes are appended: an unknown or expired upload takes none (404, 410), nor does a
   * final upload of a concatenation, one another protocol created, or one the server stopped.
   */
  async function beforeWrite(id: string, actor?: Actor, protocol: UploadProtocol = 'tus'): Promise<void> {
    const [state, status] = await Promise.all([stateOf(id, actor), statuses.get(id)]);
    // "The Server MUST respond with 403 Forbidden to PATCH requests against a final upload URL."
    if (state.concat.kind === 'final') throw new HttpError('ERR_MODIFY_FINAL', 'this is the final upload of a concatenation: it takes no bytes of its own');
    checkSameProtocol(state, protocol);
    if (status?.stopped) throw uploadStopped();
  }

  /** The upload no longer counts as in progress against its creator's limits. */
  function release(id: string): void {
    limits?.release(id).catch((error: unknown) => logger.warn({ err: error, uploadId: id }, 'could not release an upload from the limits'));
  }

  /**
   * A creation the front-end answered with an error after the core admitted it (the store
   * could not write the upload): if nothing was stored, it stops counting against the limits.
   */
  async function creationFailed(id: string): Promise<void> {
    try {
      await storage.getUpload(id);
    } catch (error) {
      if (error instanceof HttpError && error.code === 'ERR_UPLOAD_NOT_FOUND') release(id);
    }
  }

  /** The expiry sweep (or retention) removed the upload. */
  function expired(id: string): void {
    release(id);
  }

  /** What the core keeps of an upload that is gone (terminated, or a partial consumed by its final). */
  async function forget(id: string): Promise<void> {
    release(id);
    ensured.delete(id);
    digests.forget(id);
    await statuses.delete(id);
  }

  const concatenation = createConcatenation({
    storage,
    locker,
    logger,
    maxUploadSize: config.tus.maxUploadSize,
    keepPartials: config.tus.keepPartials,
    stateOf,
    failureOf: async (id) => {
      const status = await statuses.get(id);
      return status?.state === 'failed' || status?.state === 'rejected' ? (status.error ?? status.state) : undefined;
    },
    beforeCreate,
    created,
    finished: (upload, request) => finished(upload, request),
    forget,
  });

  /**
   * The last byte is stored: pre-finish, then processing and post-finish queued durably
   * before the client hears back, so whatever the client or a hook does next, processing
   * happens (the queue runs it once, whoever enqueues it).
   */
  async function finished(upload: UploadState, request: HookRequest, streamed?: StreamedDigest, appendedFrom?: number): Promise<FinishOutcome> {
    if (isFinished(upload)) release(upload.id);
    // The finish happens once, when the last byte arrives: a request that appended nothing to
    // a finished upload (an empty PATCH at its end) only makes sure its processing is queued.
    if (appendedFrom === upload.offset) {
      if (isComplete(upload)) await ensureProcessed(upload.id);
      return {};
    }
    // The declared digest first, for every kind of upload: bytes that are not what the client meant reach no hook and no processing.
    const checked = await checkDeclaredDigest(storage, upload, streamed);
    if (checked.mismatch) {
      await markDigestMismatch(storage, statuses, upload.id, checked.mismatch);
      return { rejected: checked.mismatch };
    }
    streamed = checked.digest ?? streamed;
    // A partial upload of a concatenation is a piece: pre-finish, processing and post-finish run for its final upload.
    if (!isComplete(upload)) return {};
    metrics?.uploadsFinished.inc();
    const info = hookUploadOf(upload);
    let failure: unknown;
    let rejected: HttpError | undefined;
    try {
      await hooks.runBlocking('pre-finish', { type: 'pre-finish', upload: info, request });
    } catch (error) {
      if (error instanceof HttpError && error.status < 500) rejected = error;
      else failure = error;
    }
    if (rejected) await markRejected(statuses, upload.id, `rejected by the pre-finish hook: ${rejected.message}`);
    await ensureProcessed(upload.id, streamed);
    await hooks.notify('post-finish', { type: 'post-finish', upload: info, request }, `post-finish:${upload.id}`);
    return { rejected, failure };
  }

  /** Termination, before the store removes anything: the pre-terminate hook may veto it. */
  async function beforeTerminate(id: string, request: HookRequest, actor?: Actor): Promise<HookUpload | undefined> {
    let upload: UploadState;
    try {
      upload = await stateOf(id);
    } catch (error) {
      // Unknown or expired: the front-end answers 404/410 itself. Anything else (S3 not
      // answering) fails the DELETE: removing it anyway would skip pre-terminate's veto.
      if (error instanceof HttpError && (error.code === 'ERR_UPLOAD_NOT_FOUND' || error.code === 'ERR_UPLOAD_GONE')) return undefined;
      throw error;
    }
    // Another subject's upload: refused here, as if it did not exist, before anything is removed.
    if (!mayAccess(upload, actor)) throw uploadNotFound();
    const info = hookUploadOf(upload);
    await hooks.runBlocking('pre-terminate', { type: 'pre-terminate', upload: info, request });
    return info;
  }

  /** Termination done: the status record goes, post-terminate is queued. */
  function terminated(id: string, upload: HookUpload | undefined, request: HookRequest): void {
    const info = upload ?? { id, size: null, offset: 0, metadata: {}, createdAt: null };
    metrics?.uploadsTerminated.inc();
    forget(id).catch((error: unknown) => logger.warn({ err: error, uploadId: id }, 'could not delete a status record'));
    hooks
      .notify('post-terminate', { type: 'post-terminate', upload: info, request }, `post-terminate:${id}`)
      .catch((error: unknown) => logger.error({ err: error, uploadId: id }, 'could not queue post-terminate'));
  }

  /** A post-receive hook asked to stop the upload: record it, and end the bodies flowing in. */
  async function stop(id: string): Promise<void> {
    await markRejected(statuses, id, 'stopped by the post-receive hook', { stopped: true });
    lifecycle.stopUpload(id);
  }

  /**
   * A download's view of the upload: its state, unless processing rejected it: then 403 with
   * the reason (SERVE_REJECTED serves it anyway), so a file refused for its real type is not
   * handed out from this server.
   */
  async function downloadState(id: string, actor?: Actor): Promise<UploadState> {
    const [state, status] = await Promise.all([stateOf(id, actor), config.processing.serveRejected ? undefined : statuses.get(id)]);
    if (status?.state === 'rejected') throw new HttpError('ERR_UPLOAD_REJECTED', `this upload was rejected and is not served: ${status.error ?? 'rejected'}`, {}, 403);
    return state;
  }

  /** Waits until the notifications an upload's request queued are durable. */
  const flushed = (id: string) => hooks.flush(id);

  /** Whether anyone (a post-receive hook) wants to hear of bytes as they arrive. */
  const wantsProgress = hooks.hasTargets('post-receive');

  return {
    wantsProgress,
    digests,
    currentState,
    stateOf,
    downloadState,
    beforeCreate,
    created,
    received,
    beforeWrite,
    finished,
    concatenate: concatenation.concatenate,
    beforeTerminate,
    terminated,
    creationFailed,
    expired,
    stop,
    ensureProcessed,
    flushed,
    expiryMs,
  };
}

export type UploadCore = ReturnType<typeof createUploadCore>;
