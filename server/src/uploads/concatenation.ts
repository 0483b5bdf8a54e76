import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ERRORS, Upload, type Lock } from '@tus/utils';
import { HttpError } from '../errors.js';
import type { HookRequest } from '../hooks/types.js';
import type { Logger } from '../logger.js';
import type { UploadStorage } from '../storage/index.js';
import { formatBytes } from '../units/byte-size.js';
import type { FinishOutcome } from './upload-core.js';
import type { Actor } from './actor.js';
import { mayAccess } from './ownership.js';
import type { UploadLocker } from './upload-locker.js';
import { isFinished, uploadStateOf, type UploadState } from './upload-state.js';

/** How long building a final upload waits for a lock (a partial being written, a racing final request). */
const LOCK_WAIT_MS = 30_000;

/** A final upload names at most this many partial uploads (tus sets no limit; a header of URLs is bounded anyway). */
export const MAX_PARTS = 1_000;

/** What the front-end asks for: a final upload of these partial uploads, in order, with the client's metadata. */
export type FinalRequest = Readonly<{
  parts: readonly string[];
  /** The client's metadata and declared facts, as for any creation (length and offset are computed here). */
  sent: Pick<UploadState, 'metadata' | 'binaryKeys' | 'declaredSha256'>;
  request: HookRequest;
  /** Who asks: the partials must be theirs, and the final upload will be. */
  actor: Actor | undefined;
}>;

/** The final upload built (or found built by an identical request before), and what its finish decided. */
export type FinalOutcome = Readonly<{ upload: UploadState; finish: FinishOutcome; existed: boolean }>;

export type ConcatenationDeps = Readonly<{
  storage: UploadStorage;
  locker: UploadLocker;
  logger: Logger;
  maxUploadSize: number;
  keepPartials: boolean;
  stateOf(id: string, actor?: Actor): Promise<UploadState>;
  /** The partial's processing record: one that failed (its declared digest did not match) is not a piece to build with. */
  failureOf(id: string): Promise<string | undefined>;
  beforeCreate(upload: UploadState, request: HookRequest, actor: Actor | undefined): Promise<Record<string, string | null>>;
  created(upload: UploadState, request: HookRequest): void;
  finished(upload: UploadState, request: HookRequest): Promise<FinishOutcome>;
  /** A partial removed after its final was built: forget what the core keeps of it. */
  forget(id: string): Promise<void>;
}>;

const invalid = (message: string) => new HttpError('ERR_INVALID_CONCAT', message);

/**
 * The id of the final upload of these partials, in this order: the same list always names
 * the same final upload, so two identical requests (a client's retry, two instances racing)
 * build it once and both answer its URL. Derived from the partials' unguessable ids, so it
 * is as unguessable as they are.
 */
export function finalUploadId(parts: readonly string[]): string {
  return createHash('sha256').update(`tus-concat\n${parts.join('\n')}`).digest('hex').slice(0, 32);
}

/**
 * The concatenation extension's final uploads: "the Server MUST concatenate the partial
 * uploads in the order specified" into an ordinary, finished upload, which hooks,
 * processing and downloads then treat like any other. Each partial is locked while it is
 * read, and the final upload's own lock makes identical requests build it once.
 */
export function createConcatenation(deps: ConcatenationDeps) {
  const { storage, locker, logger } = deps;

  async function acquire(id: string): Promise<Lock> {
    const lock = locker.newLock(id);
    try {
      // A release request from a PATCH on a partial is refused: the partial is being read, and
      // it is finished anyway.
      await lock.lock(AbortSignal.timeout(LOCK_WAIT_MS), () => undefined);
    } catch (error) {
      if (error === ERRORS.ERR_LOCK_TIMEOUT) throw new HttpError('ERR_UPLOAD_LOCKED', `upload ${id} is busy; retry shortly`);
      throw error;
    }
    return lock;
  }

  /** The partials as stored, each checked: it exists, is a partial upload, and all its bytes arrived. */
  async function checkedParts(ids: readonly string[], actor: Actor | undefined): Promise<UploadState[]> {
    const states: UploadState[] = [];
    for (const id of ids) {
      let state: UploadState;
      try {
        // Another subject's partial does not exist for this actor.
        state = await deps.stateOf(id, actor);
      } catch (error) {
        if (error instanceof HttpError && error.code === 'ERR_UPLOAD_NOT_FOUND') throw invalid(`partial upload ${id} does not exist`);
        if (error instanceof HttpError && error.code === 'ERR_UPLOAD_GONE') throw invalid(`partial upload ${id} expired`);
        throw error;
      }
      // "The Server MUST verify that the partial uploads exist and are finished."
      if (state.concat.kind === 'final') throw invalid(`upload ${id} is a final upload; a final upload is made of partial uploads only`);
      if (state.concat.kind !== 'partial') throw invalid(`upload ${id} is not a partial upload (create it with Upload-Concat: partial)`);
      if (!isFinished(state)) throw invalid(`partial upload ${id} is not finished (${state.offset} of ${state.length ?? 'a deferred length of'} bytes)`);
      const failure = await deps.failureOf(id);
      if (failure) throw invalid(`partial upload ${id} failed: ${failure}`);
      states.push(state);
    }
    return states;
  }

  /**
   * The final upload of this list, if one was built and stands. One left unfinished by a crash
   * mid-build, or refused by its finish (a pre-finish hook, its declared digest), kept its
   * partials: it is removed and built again from them.
   */
  async function existingFinal(id: string, actor: Actor | undefined): Promise<UploadState | undefined> {
    let refused: string | undefined;
    try {
      const state = await deps.stateOf(id);
      // Built by another subject from partials this actor cannot name: never rebuilt, never shown.
      if (!mayAccess(state, actor)) throw invalid('the partial uploads named do not exist');
      refused = isFinished(state) ? await deps.failureOf(id) : 'a build was interrupted';
      if (!refused) return state;
    } catch (error) {
      if (error instanceof HttpError && (error.code === 'ERR_UPLOAD_NOT_FOUND' || error.code === 'ERR_UPLOAD_GONE')) return undefined;
      throw error;
    }
    logger.warn({ uploadId: id, reason: refused }, 'final upload found unusable; building it again');
    await storage.datastore.remove(id);
    await deps.forget(id);
    return undefined;
  }

  /** The partials' bytes, in order, into the final upload: copied inside the store when it can, streamed otherwise. */
  async function assemble(finalId: string, parts: readonly UploadState[]): Promise<'copied in the store' | 'streamed'> {
    if (await storage.concatenateInStore?.(finalId, parts.map(({ id, offset }) => ({ id, length: offset })))) return 'copied in the store';
    async function* bytes() {
      for (const part of parts) {
        for await (const chunk of await storage.read(part.id)) yield chunk as Buffer;
      }
    }
    const total = parts.reduce((sum, part) => sum + part.offset, 0);
    const written = await storage.datastore.write(Readable.from(bytes(), { objectMode: false }), finalId, 0);
    if (written !== total) throw new Error(`final upload ${finalId}: ${written} of ${total} bytes written`);
    return 'streamed';
  }

  async function removePartials(parts: readonly UploadState[]): Promise<void> {
    for (const part of parts) {
      try {
        await storage.datastore.remove(part.id);
        await deps.forget(part.id);
      } catch (error) {
        // It expires like any unfinished upload: nothing is lost by leaving it.
        logger.warn({ err: error, uploadId: part.id }, 'could not remove a partial upload after its final upload was built');
      }
    }
  }

  /** Builds the final upload of `parts` (or finds it built), then finishes it like any upload. */
  async function concatenate({ parts: ids, sent, request, actor }: FinalRequest): Promise<FinalOutcome> {
    if (ids.length === 0) throw invalid('Upload-Concat: final names no partial uploads');
    if (ids.length > MAX_PARTS) throw invalid(`a final upload is made of at most ${MAX_PARTS} partial uploads, got ${ids.length}`);
    const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
    if (duplicate) throw invalid(`partial upload ${duplicate} is named twice`);

    const finalId = finalUploadId(ids);
    const finalLock = await acquire(finalId);
    const held: Lock[] = [];
    try {
      const existing = await existingFinal(finalId, actor);
      if (existing) return { upload: existing, finish: {}, existed: true };

      // Locked in id order, whatever the final's order: two finals sharing partials never wait on each other in a circle.
      for (const id of [...ids].sort()) held.push(await acquire(id));
      const parts = await checkedParts(ids, actor);
      const length = parts.reduce((sum, part) => sum + part.offset, 0);
      // "the Server MUST respond with 413 … if the length of the upload exceeds the maximum":
      // the final upload is the upload, whatever the size of its pieces.
      if (length > deps.maxUploadSize) {
        throw new HttpError(
          'ERR_MAX_SIZE_EXCEEDED',
          `the final upload is ${formatBytes(length)} (${length} bytes); the maximum upload size is ${formatBytes(deps.maxUploadSize)} (${deps.maxUploadSize} bytes)`,
        );
      }

      const planned: UploadState = { id: finalId, length, offset: 0, createdAt: null, concat: { kind: 'final', parts: ids }, owner: undefined, ...sent };
      const metadata = await deps.beforeCreate(planned, request, actor);
      const stored = await storage.datastore.create(new Upload({ id: finalId, size: length, offset: 0, metadata }));
      const created = uploadStateOf(stored);
      deps.created(created, request);
      const how = await assemble(finalId, parts);

      const upload = await deps.stateOf(finalId);
      if (!isFinished(upload)) throw new Error(`final upload ${finalId} holds ${upload.offset} of ${length} bytes after its build`);
      const finish = await deps.finished(upload, request);
      // A final the finish refused (a pre-finish hook, a declared digest) keeps its partials: the client may build it again.
      if (!deps.keepPartials && !finish.failure && !finish.rejected) await removePartials(parts);
      logger.info({ uploadId: finalId, parts: ids.length, length, how }, 'final upload built from partial uploads');
      return { upload, finish, existed: false };
    } finally {
      for (const lock of held.reverse()) await lock.unlock().catch(() => undefined);
      await finalLock.unlock().catch(() => undefined);
    }
  }

  return { concatenate };
}
