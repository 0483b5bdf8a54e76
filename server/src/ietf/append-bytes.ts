import { HttpError } from '../errors.js';
import type { HookRequest } from '../hooks/types.js';
import type { UploadBody } from '../http/upload-body.js';
import type { DigestTap } from '../uploads/streaming-digest.js';
import type { FinishOutcome } from '../uploads/upload-core.js';
import { isComplete, isFinished, uploadStateOf, type UploadState } from '../uploads/upload-state.js';
import type { IetfDeps } from './ietf-deps.js';
import { inconsistentLength, tooLarge } from './ietf-request.js';
import { storeBytes } from './store-bytes.js';

export type AppendInput = Readonly<{
  /** The upload as it stood when the lock was taken; its offset is where the body goes. */
  upload: UploadState;
  /** The request says its content ends the upload (Upload-Complete: ?1). */
  complete: boolean;
  /** Content-Length, when the client sent one. */
  contentLength: number | undefined;
  /** The body, or undefined when the request has none. */
  body: UploadBody | undefined;
  request: HookRequest;
  digest: DigestTap | undefined;
  /** A creation: its bytes are the upload's first, and the finish runs in full even for an empty upload. */
  creation: boolean;
}>;

export type AppendOutcome = Readonly<{
  upload: UploadState;
  /** The answer is this error (bytes that arrived are kept all the same). */
  error?: HttpError;
  finish?: FinishOutcome;
}>;

/**
 * Appends one request's content to an upload whose lock the caller holds, with every rule
 * the draft and the core put on it: the length (Upload-Length, or Content-Length with
 * `Upload-Complete: ?1`) is checked before a byte is read, the bytes are bounded by it or by
 * MAX_UPLOAD_SIZE, a complete request of unknown length declares it, and the upload that
 * ends complete runs the core's finish (declared digest, pre-finish, processing, post-finish).
 */
export async function appendBytes(deps: IetfDeps, input: AppendInput): Promise<AppendOutcome> {
  const { core, storage, config } = deps;
  const maxUploadSize = config.tus.maxUploadSize;
  const start = input.upload;
  const id = start.id;
  let length = start.length;

  // Checked before reading: a client that says how much it sends learns at once it cannot.
  if (input.contentLength !== undefined) {
    const end = start.offset + input.contentLength;
    if (input.complete && length !== undefined && end !== length) {
      return { upload: start, error: inconsistentLength(`this request ends the upload at ${end} bytes, but its length is ${length} bytes`) };
    }
    if (length !== undefined && end > length) {
      return { upload: start, error: inconsistentLength(`${input.contentLength} bytes at offset ${start.offset} go past the upload's length of ${length} bytes`) };
    }
    if (end > maxUploadSize) return { upload: start, error: tooLarge(end, maxUploadSize) };
    if (input.complete && length === undefined) {
      await storage.datastore.declareUploadLength(id, end);
      length = end;
    }
  }

  let offset = start.offset;
  let overflowed = false;
  if (input.body) {
    const room = (length ?? maxUploadSize) - start.offset;
    const observe = input.digest && ((chunk: Uint8Array) => input.digest?.observe(chunk));
    ({ offset, overflowed } = await storeBytes(storage, id, start.offset, input.body, room, observe));
  }
  const whole = !overflowed && !input.body?.cutReason;
  // "The server MUST record the length … if the Upload-Length or Upload-Complete header fields are included."
  if (input.complete && whole && length === undefined) {
    await storage.datastore.declareUploadLength(id, offset);
    length = offset;
  }

  const upload = offset === start.offset && length === start.length ? start : uploadStateOf(await storage.getUpload(id));
  if (offset > start.offset && core.wantsProgress) core.received(upload);

  let finish: FinishOutcome | undefined;
  if (isFinished(upload)) {
    const streamed = input.digest?.finish(id, upload.offset);
    // An upload complete before this request only makes sure its processing is queued.
    const appendedFrom = !input.creation && isComplete(start) ? start.offset : undefined;
    finish = await core.finished(upload, input.request, streamed, appendedFrom);
  } else {
    input.digest?.settle(id, whole ? upload.offset : undefined);
  }

  let error: HttpError | undefined;
  if (input.body?.cutReason === 'stopped') error = new HttpError('ERR_UPLOAD_STOPPED', 'this upload was stopped by the server and takes no more bytes');
  else if (overflowed && start.length !== undefined) error = inconsistentLength(`the content goes past the upload's length of ${start.length} bytes; the bytes up to it were kept`);
  else if (overflowed) error = tooLarge(start.offset + (input.body?.bytesReceived ?? 0), maxUploadSize);
  else if (input.complete && whole && length !== undefined && upload.offset < length) {
    error = inconsistentLength(`the request said it completes the upload, but it ends at ${upload.offset} of ${length} bytes`);
  }
  return { upload, error, finish };
}
