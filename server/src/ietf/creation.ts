import { randomBytes } from 'node:crypto';
import { Upload } from '@tus/utils';
import { HttpError } from '../errors.js';
import { declaredSha256 } from '../uploads/declared-digest.js';
import { parseMetadataHeader } from '../uploads/stored-metadata.js';
import { uploadStateOf, type UploadState } from '../uploads/upload-state.js';
import { appendBytes } from './append-bytes.js';
import type { IetfDeps } from './ietf-deps.js';
import { contentLengthOf, dispositionFilename, inconsistentLength, readCompleteness, readOffset, readUploadLength } from './ietf-request.js';
import { hasContent, openBody, withAppendLock, type IetfRequest } from './ietf-request-context.js';
import { baseHeaders, ietfErrorResponse, uploadHeaders, uploadLimit } from './ietf-responses.js';
import { INTEROP_HEADER } from './interop-versions.js';
import { sendInformational } from './informational-response.js';
import { uploadUrl } from './upload-url.js';

/**
 * Upload creation: a POST with `Upload-Complete` (`Upload-Incomplete` in version 3) to
 * TUS_PATH. The upload exists (pre-create ran, post-create is durable) before a byte is
 * read; then `104 Upload Resumption Supported` tells the client where to resume, and the
 * content, if any, is appended as by an append request. Answers 201 with Location.
 */
export async function createUpload(deps: IetfDeps, request: IetfRequest): Promise<Response> {
  const { raw, exchange } = request;
  const { config, core, storage } = deps;
  const fail = (error: HttpError) => ietfErrorResponse(exchange, error);

  const complete = readCompleteness(exchange.rules, raw.headers);
  if (complete instanceof HttpError) return fail(complete);
  if (complete === undefined) return fail(new HttpError('ERR_INVALID_REQUEST', `an upload creation needs ${exchange.rules.completeness}`));
  const offset = readOffset(raw.headers);
  if (offset instanceof HttpError) return fail(offset);
  if (offset !== undefined && offset !== 0) return fail(new HttpError('ERR_INVALID_OFFSET', 'an upload creation starts at offset 0'));
  let length = readUploadLength(raw.headers, config.tus.maxUploadSize);
  if (length instanceof HttpError) return fail(length);
  const contentLength = contentLengthOf(raw.headers);
  // "the combination of the Content-Length and Upload-Complete: ?1 header fields" is a length too; both must agree.
  if (complete && contentLength !== undefined) {
    if (length !== undefined && length !== contentLength) {
      return fail(inconsistentLength(`Upload-Length says ${length} bytes, but the request completes the upload with ${contentLength}`));
    }
    length = contentLength;
    if (length > config.tus.maxUploadSize) return fail(new HttpError('ERR_MAX_SIZE_EXCEEDED', `the upload would be ${length} bytes; the maximum upload size is ${config.tus.maxUploadSize} bytes`));
  }

  const sent = parseMetadataHeader(raw.headers.get('upload-metadata'));
  if (!sent) return fail(new HttpError('ERR_INVALID_UPLOAD_METADATA', 'Upload-Metadata is malformed'));
  const filename = dispositionFilename(raw.headers);
  const metadata = filename !== undefined && !('filename' in sent.metadata) ? { ...sent.metadata, filename } : sent.metadata;
  const declared = declaredSha256(raw.headers.get('repr-digest'), { ...sent, metadata });
  if (declared instanceof HttpError) return fail(declared);

  // The same ids as @tus/server's: 32 hex characters.
  const id = randomBytes(16).toString('hex');
  const planned: UploadState = { ...uploadStateOf(new Upload({ id, size: length, offset: 0 })), ...sent, metadata, declaredSha256: declared, protocol: 'ietf' };
  let stored: UploadState;
  try {
    const record = await core.beforeCreate(planned, request.hook, request.actor);
    stored = uploadStateOf(await storage.datastore.create(new Upload({ id, size: length, offset: 0, metadata: record })));
  } catch (error) {
    if (error instanceof HttpError) return fail(error);
    throw error;
  }
  request.c.set('uploadId', id);
  core.created(stored, request.hook);
  await core.flushed(id);

  const location = uploadUrl(raw, config.tus.path, id, config.server.trustProxy);
  const limit = uploadLimit(exchange, stored);
  sendInformational(request.c.env?.incoming, request.c.env?.outgoing, 104, 'Upload Resumption Supported', {
    [INTEROP_HEADER]: String(exchange.rules.version),
    Location: location,
    ...(limit ? { 'Upload-Limit': limit } : {}),
  });

  let upload = stored;
  let answer: HttpError | undefined;
  if (hasContent(raw, contentLength) || length === 0) {
    const opened = hasContent(raw, contentLength) ? openBody(deps, request, id) : undefined;
    const digest = opened ? core.digests.tap(undefined, 0, length ?? contentLength) : undefined;
    try {
      const outcome = await withAppendLock(deps, request, id, opened?.body, () =>
        appendBytes(deps, { upload: stored, complete, contentLength, body: opened?.body, request: request.hook, digest, creation: true }),
      );
      upload = outcome.upload;
      answer = outcome.error ?? outcome.finish?.rejected;
      if (outcome.finish?.failure) throw outcome.finish.failure;
    } finally {
      opened?.untrack();
      if (opened) request.c.set('bytesIn', opened.body.bytesReceived);
      if (opened && !opened.body.isFinished) opened.body.cut('client-aborted');
    }
    await core.flushed(id);
  } else if (complete) {
    // An empty body with Upload-Complete: ?1 and no length: the representation is empty.
    await storage.datastore.declareUploadLength(id, 0);
    upload = uploadStateOf(await storage.getUpload(id));
    const finish = await core.finished(upload, request.hook);
    if (finish.failure) throw finish.failure;
    answer = finish.rejected;
    await core.flushed(id);
  }

  const headers = uploadHeaders(exchange, upload, baseHeaders(exchange));
  headers.set('Location', location);
  if (answer) return ietfErrorResponse(exchange, answer, { headers });
  return new Response(null, { status: 201, headers });
}
