import { HttpError } from '../errors.js';
import { isComplete, uploadStateOf, type UploadState } from '../uploads/upload-state.js';
import { appendBytes, type AppendOutcome } from './append-bytes.js';
import type { IetfDeps } from './ietf-deps.js';
import { contentLengthOf, inconsistentLength, mediaTypeOf, readCompleteness, readOffset, readUploadLength } from './ietf-request.js';
import { hasContent, openBody, withAppendLock, type IetfRequest } from './ietf-request-context.js';
import { baseHeaders, ietfErrorResponse, uploadHeaders } from './ietf-responses.js';

type Refusal = Readonly<{ error: HttpError; upload?: UploadState; members?: Record<string, unknown> }>;

/**
 * Upload append: a PATCH to the upload with Upload-Offset, the completeness header and,
 * from version 6, `Content-Type: application/partial-upload`. Answers 204 with the new
 * offset; 409 with the correct Upload-Offset (and the mismatching-upload-offset problem
 * where the version has it) when the client is elsewhere.
 */
export async function appendUpload(deps: IetfDeps, request: IetfRequest, id: string): Promise<Response> {
  const { raw, exchange } = request;
  const { config, core, storage } = deps;
  const fail = (error: HttpError) => ietfErrorResponse(exchange, error);

  const required = exchange.rules.appendContentType;
  if (required && mediaTypeOf(raw.headers) !== required) {
    return fail(new HttpError('ERR_INVALID_CONTENT_TYPE', `an upload append must use Content-Type: ${required}`));
  }
  const offset = readOffset(raw.headers);
  if (offset instanceof HttpError) return fail(offset);
  if (offset === undefined) return fail(new HttpError('ERR_INVALID_OFFSET', 'an upload append needs Upload-Offset'));
  const stated = readCompleteness(exchange.rules, raw.headers);
  if (stated instanceof HttpError) return fail(stated);
  // -01 (version 3): no Upload-Incomplete means the content is the rest; later drafts require the header.
  if (stated === undefined && exchange.rules.completeness === 'Upload-Complete') return fail(new HttpError('ERR_INVALID_REQUEST', 'an upload append needs Upload-Complete'));
  const complete = stated ?? true;
  const declaredLength = readUploadLength(raw.headers, config.tus.maxUploadSize);
  if (declaredLength instanceof HttpError) return fail(declaredLength);
  const contentLength = contentLengthOf(raw.headers);
  const opened = hasContent(raw, contentLength) ? openBody(deps, request, id) : undefined;

  let outcome: AppendOutcome | Refusal;
  try {
    outcome = await withAppendLock(deps, request, id, opened?.body, async (): Promise<AppendOutcome | Refusal> => {
      await core.beforeWrite(id, request.actor, 'ietf');
      let upload = await core.stateOf(id, request.actor);
      if (offset !== upload.offset) {
        return {
          error: new HttpError('ERR_MISMATCHED_OFFSET', `Upload-Offset is ${offset}, but the upload is at ${upload.offset}; send HEAD to learn it`),
          upload,
          members: { 'expected-offset': upload.offset, 'provided-offset': offset },
        };
      }
      if (isComplete(upload) && opened) {
        return { error: new HttpError('ERR_UPLOAD_COMPLETED', 'the upload is already complete and takes no more bytes'), upload };
      }
      if (declaredLength !== undefined && declaredLength !== upload.length) {
        if (upload.length !== undefined || declaredLength < upload.offset) {
          return { error: inconsistentLength(`Upload-Length says ${declaredLength} bytes, but the upload ${upload.length === undefined ? `already holds ${upload.offset}` : `is ${upload.length}`}`), upload };
        }
        await storage.datastore.declareUploadLength(id, declaredLength);
        upload = uploadStateOf(await storage.getUpload(id));
      }
      const digest = opened ? core.digests.tap(id, offset, upload.length ?? contentLength) : undefined;
      return appendBytes(deps, { upload, complete, contentLength, body: opened?.body, request: request.hook, digest, creation: false });
    });
  } catch (error) {
    if (error instanceof HttpError) return fail(error);
    throw error;
  } finally {
    opened?.untrack();
    if (opened) request.c.set('bytesIn', opened.body.bytesReceived);
    // Refused before reading (a 409, a 403): stop listening; the connection is closed below.
    if (opened && !opened.body.isFinished) opened.body.cut('client-aborted');
  }
  if ('finish' in outcome && outcome.finish?.failure) throw outcome.finish.failure;
  await core.flushed(id);

  const headers = outcome.upload ? uploadHeaders(exchange, outcome.upload, baseHeaders(exchange)) : baseHeaders(exchange);
  const error = outcome.error ?? ('finish' in outcome ? outcome.finish?.rejected : undefined);
  // A body we did not read to its end (cut, refused, past the limit) may still be arriving: this connection is done.
  if (opened && (opened.body.cutReason || outcome.error)) headers.set('Connection', 'close');
  if (error) return ietfErrorResponse(exchange, error, { headers, members: 'members' in outcome ? outcome.members : undefined });
  return new Response(null, { status: 204, headers });
}
