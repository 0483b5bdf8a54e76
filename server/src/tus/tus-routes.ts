import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Server } from '@tus/server';
import { Hono, type Context } from 'hono';
import type { Config } from '../config.js';
import { HttpError, isServiceUnavailable, serviceUnavailable } from '../errors.js';
import type { AppEnv } from '../http/app-env.js';
import type { Authenticator } from '../http/auth.js';
import { corsHeaders, restrictCorsHeaders } from '../http/cors.js';
import { errorResponse } from '../http/error-response.js';
import type { ServerLifecycle } from '../http/lifecycle.js';
import { serveDownload } from '../routes/download.js';
import type { UploadStorage } from '../storage/index.js';
import { isStorageFull, storageFull } from '../storage/storage-errors.js';
import type { Actor } from '../uploads/actor.js';
import type { UploadCore } from '../uploads/upload-core.js';
import { TUS_CHECKSUM_ALGORITHM } from './checksum-algorithms.js';
import { createChecksumStaging } from './checksum-staging.js';
import { createFinalUpload } from './final-upload.js';
import { offsetResponse } from './offset-response.js';
import { checkTusRequest, effectiveMethod, isOffsetStream, TUS_VERSION, type TusTarget } from './protocol-guard.js';
import { mappedErrorHeaders } from './tus-server.js';
import { UploadBody, type CutReason } from '../http/upload-body.js';
import { uploadIdFromSegment } from './upload-id.js';
import { createdUploadId, rememberActor, rememberDigestTap, rememberPartial, rememberRemoteAddress } from './upload-lifecycle.js';

export type TusRoutesDeps = Readonly<{
  config: Config;
  tus: Server;
  core: UploadCore;
  storage: UploadStorage;
  lifecycle: ServerLifecycle;
  /** Set when requests need a bearer token. */
  authenticate?: Authenticator;
}>;

const OFFSET_STREAM = 'application/offset+octet-stream';

/** Why a body was cut short, for the client that resumes from the offset it got (Upload-Cut-Reason). */
const CUT_EXPLANATIONS: Partial<Record<CutReason, (config: Config) => string>> = {
  idle: (config) => `idle: no byte arrived for ${config.server.idleTimeoutMs / 1000} s (IDLE_TIMEOUT); resume from Upload-Offset`,
  'too-slow': ({ server: { minUploadRate: rate } }) =>
    `too-slow: fewer than ${rate.bytesPerSecond} bytes/s arrived over ${rate.windowMs / 1000} s (MIN_UPLOAD_RATE); resume from Upload-Offset`,
};

/** PATCH always carries upload bytes; POST only with creation-with-upload. */
function carriesUploadBytes(method: string, headers: Headers): boolean {
  if (method === 'PATCH') return true;
  return method === 'POST' && isOffsetStream(headers);
}

/** The Node request when served over a socket; a web stream under app.request() in tests. */
function bodySource(c: Context<AppEnv>): Readable {
  if (c.env?.incoming) return c.env.incoming as Readable;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as NodeReadableStream) : Readable.from([]);
}

/**
 * The request @tus/server sees: the client's, unless its method is overridden, its body
 * is ours to feed (UploadBody) or its Upload-Metadata is blank; then a copy with only those differences.
 */
function engineRequest(raw: Request, method: string, body: UploadBody | undefined): Request {
  const overridden = raw.headers.has('x-http-method-override');
  // A blank Upload-Metadata means no metadata (tusd agrees); @tus/server's validator refuses it.
  const blankMetadata = raw.headers.get('upload-metadata')?.trim() === '';
  // @tus/server refuses Upload-Concat (it has no concatenation): a partial upload is created as any other, and marked by the core.
  const concat = raw.headers.has('upload-concat');
  if (!body && !overridden && !blankMetadata && !concat) return raw;
  const headers = new Headers(raw.headers);
  if (concat) headers.delete('upload-concat');
  if (overridden) headers.delete('x-http-method-override');
  if (blankMetadata) headers.delete('upload-metadata');
  // The guard accepts media type parameters; @tus/server compares the whole header.
  if (body && headers.get('content-type') !== OFFSET_STREAM) headers.set('content-type', OFFSET_STREAM);
  return new Request(raw.url, { method, headers, body: body?.stream ?? null, duplex: 'half' } as RequestInit);
}

/**
 * The tus 1.0 front-end: `${path}` (and `${path}/`) creates, `${path}/<id>` is an upload.
 * It translates HTTP only: the rules live in the upload core, the byte handling in
 * @tus/server. Kept as plain Hono routes (no app.mount, which strips the prefix and breaks
 * upload URLs; no bodyLimit or cors middleware, which buffer bodies or fight @tus/server's CORS).
 */
export function tusRoutes({ config, tus, core, storage, lifecycle, authenticate }: TusRoutesDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  const checksums = createChecksumStaging({ storageDirectory: config.storage.directory, idleTimeoutMs: config.server.idleTimeoutMs, minUploadRate: config.server.minUploadRate, maxUploadSize: config.tus.maxUploadSize, lifecycle });

  async function handle(c: Context<AppEnv>, target: TusTarget): Promise<Response> {
    const raw = c.req.raw;
    const method = effectiveMethod(raw.method, raw.headers);
    const cors = corsHeaders(config.cors, raw.headers.get('origin'));
    const fail = (error: HttpError) =>
      errorResponse(error, { ...cors, 'Tus-Resumable': TUS_VERSION, ...(method === 'HEAD' ? { 'Cache-Control': 'no-store' } : {}) });
    if (target.kind === 'upload') c.set('uploadId', target.id);

    // OPTIONS stays open: CORS preflights carry no credentials, and discovery reveals nothing.
    let actor: Actor | undefined;
    if (authenticate && method !== 'OPTIONS') {
      const outcome = await authenticate(raw);
      if (outcome.refused) return fail(outcome.refused);
      actor = outcome.actor;
      c.set('actor', actor);
    }

    const rejection = checkTusRequest(method, target, raw.headers, config.tus.maxUploadSize, config.validation.maxMetadataBytes);
    if (rejection) return fail(rejection);

    if (method === 'GET' && target.kind === 'upload') {
      // Downloads need no Tus-Resumable, but "The Tus-Resumable header MUST be included in
      // every request and response except for OPTIONS requests" (tusd sends it on GET too).
      const plain = { ...cors, 'Tus-Resumable': TUS_VERSION };
      try {
        return await serveDownload(storage, await core.downloadState(target.id, actor), raw, plain);
      } catch (error) {
        if (error instanceof HttpError) return errorResponse(error, plain);
        throw error;
      }
    }

    if (method === 'HEAD' && target.kind === 'upload') {
      try {
        return offsetResponse(await core.currentState(target.id, raw.signal, actor), cors, config.tus.path);
      } catch (error) {
        if (error instanceof HttpError) return fail(error);
        if (isServiceUnavailable(error)) return fail(serviceUnavailable());
        throw error;
      }
    }

    // Concatenation: @tus/server has none; a final upload is built by the core, a partial one created as usual.
    const concat = method === 'POST' ? raw.headers.get('upload-concat') : null;
    if (concat !== null && concat.trim() !== 'partial') {
      rememberRemoteAddress(raw, c.env?.incoming?.socket?.remoteAddress);
      rememberActor(raw, actor);
      try {
        const response = await createFinalUpload(raw, concat, actor, { core, tusPath: config.tus.path, trustProxy: config.server.trustProxy });
        for (const [name, value] of Object.entries(cors)) response.headers.set(name, value);
        c.set('uploadId', response.headers.get('location')?.split('/').pop());
        return response;
      } catch (error) {
        if (error instanceof HttpError) return fail(error);
        if (isStorageFull(error)) return fail(storageFull());
        if (isServiceUnavailable(error)) return fail(serviceUnavailable());
        throw error;
      }
    }

    const carriesBytes = carriesUploadBytes(method, raw.headers);
    // Upload-Checksum (header or trailer): the body is staged and verified before a byte of it reaches the store.
    const verified = carriesBytes && checksums.requested(raw.headers)
      ? await checksums
          .verify(raw.headers, bodySource(c), method === 'POST' ? 0 : Number(raw.headers.get('upload-offset')), target.kind === 'upload' ? target.id : undefined)
          // The body is staged under STORAGE_DIR first: a full disk there is a 507 too.
          .catch((error: unknown) => {
            if (isStorageFull(error)) return storageFull();
            throw error;
          })
      : undefined;
    if (verified instanceof HttpError) return fail(verified);
    // A creation's bytes start at 0; a PATCH's where it says (the guard checked the header).
    // How long the upload will be: a creation says (Upload-Length); a PATCH, at least what it carries.
    const expected = Number(raw.headers.get(method === 'POST' && raw.headers.has('upload-length') ? 'upload-length' : 'content-length') ?? Number.NaN);
    const digest = carriesBytes
      ? core.digests.tap(target.kind === 'upload' ? target.id : undefined, method === 'POST' ? 0 : Number(raw.headers.get('upload-offset')), Number.isFinite(expected) ? expected : undefined)
      : undefined;
    const observe = digest && ((chunk: Buffer) => digest.observe(chunk));
    const body = carriesBytes ? (verified?.open(observe) ?? new UploadBody(bodySource(c), config.server.idleTimeoutMs, observe, config.server.minUploadRate)) : undefined;
    const untrack = body ? lifecycle.track(body, target.kind === 'upload' ? target.id : undefined) : undefined;
    let response: Response;
    const request = engineRequest(raw, method, body);
    rememberRemoteAddress(request, c.env?.incoming?.socket?.remoteAddress);
    rememberActor(request, actor);
    if (concat !== null) rememberPartial(request);
    rememberDigestTap(request, digest);
    try {
      response = await tus.handleWeb(request);
      // @tus/server names its first allowed origin to any other: an origin not on the list gets no CORS headers.
      restrictCorsHeaders(response.headers, config.cors, raw.headers.get('origin'));
      // onResponseError cannot set headers: those of the error it mapped (a 429's Retry-After) are added here.
      for (const [name, value] of Object.entries(mappedErrorHeaders(request) ?? {})) if (!response.headers.has(name)) response.headers.set(name, value);
      // "The Tus-Checksum-Algorithm header MUST be included in the response to an OPTIONS request."
      if (method === 'OPTIONS') response.headers.set('Tus-Checksum-Algorithm', TUS_CHECKSUM_ALGORITHM);
      // @tus/server's own header validation answers `Invalid <names>` outside onResponseError.
      const invalid = response.status === 400 ? /^Invalid ([a-z0-9 -]+)\n$/.exec(await response.clone().text()) : null;
      if (invalid?.[1]) response = fail(new HttpError('ERR_INVALID_REQUEST', `malformed ${invalid[1].split(' ').join(', ')} header`));
      // onResponseError cannot set headers: a 503 it mapped (S3 or Redis not answering) gets its Retry-After here.
      if (response.status === 503 && !response.headers.has('retry-after')) response.headers.set('Retry-After', serviceUnavailable().headers['Retry-After'] ?? '5');
      // And a 507 (storage full) its own.
      if (response.status === 507 && !response.headers.has('retry-after')) response.headers.set('Retry-After', storageFull().headers['Retry-After'] ?? '30');
    } finally {
      untrack?.();
      verified?.dispose();
      // Rejected before reading (404, 409...): stop listening; Hono's adapter drains the socket.
      if (body && !body.isFinished) body.cut('client-aborted');
    }

    if (body) c.set('bytesIn', body.bytesReceived);
    const created = method === 'POST' ? createdUploadId(request) : undefined;
    if (created) c.set('uploadId', created);
    if (created && !response.ok) await core.creationFailed(created).catch(() => undefined);
    const digested = created ?? (target.kind === 'upload' ? target.id : undefined);
    if (digest && digested) {
      // Continued by the next request only if this one was kept whole: a cut body falls back to a read.
      const stored = response.ok && !body?.cutReason ? Number(response.headers.get('upload-offset') ?? Number.NaN) : undefined;
      digest.settle(digested, stored);
    }
    // post-create (and post-finish, post-terminate) are queued durably before the client hears of it.
    const touched = created ?? (target.kind === 'upload' && method === 'DELETE' ? target.id : undefined);
    if (touched) await core.flushed(touched);
    if (body?.cutReason === 'stopped') {
      response = fail(new HttpError('ERR_UPLOAD_STOPPED', 'this upload was stopped by the server and takes no more bytes'));
    }
    // A body we cut short may still be arriving: tell the client this connection is done.
    if (body?.cutReason) response.headers.set('Connection', 'close');
    // The bytes that arrived are stored and the answer has their offset: say why the rest was not taken.
    const why = body?.cutReason ? CUT_EXPLANATIONS[body.cutReason]?.(config) : undefined;
    if (why) response.headers.set('Upload-Cut-Reason', why);
    return response;
  }

  const base = config.tus.path;
  routes.all(base, (c) => handle(c, { kind: 'collection' }));
  routes.all(`${base}/`, (c) => handle(c, { kind: 'collection' }));
  routes.all(`${base}/:segment`, (c) => {
    // The raw segment, decoded once: the same reading @tus/server makes of the URL.
    const id = uploadIdFromSegment(new URL(c.req.url).pathname.slice(base.length + 1));
    if (id === undefined) return uploadNotFound(config.cors, c.req.raw);
    return handle(c, { kind: 'upload', id });
  });
  return routes;
}

/** The tus 404 for a path below the tus path that names no upload (a malformed id, a dot segment). */
export function uploadNotFound(cors: Config['cors'], request: Request): Response {
  return errorResponse(new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found'), {
    ...corsHeaders(cors, request.headers.get('origin')),
    'Tus-Resumable': TUS_VERSION,
    // Every HEAD answer forbids caching, this 404 included.
    ...(effectiveMethod(request.method, request.headers) === 'HEAD' ? { 'Cache-Control': 'no-store' } : {}),
  });
}
