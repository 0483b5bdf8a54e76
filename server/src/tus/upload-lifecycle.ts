import { EVENTS, type Server, type ServerOptions } from '@tus/server';
import type { Upload } from '@tus/utils';
import { HttpError } from '../errors.js';
import type { HookRequest, HookUpload } from '../hooks/types.js';
import { statusPath } from '../routes/status.js';
import { declaredSha256 } from '../uploads/declared-digest.js';
import type { DigestTap } from '../uploads/streaming-digest.js';
import type { Actor } from '../uploads/actor.js';
import type { UploadCore } from '../uploads/upload-core.js';
import { parseMetadataHeader, SINGLE } from '../uploads/stored-metadata.js';
import { uploadStateOf } from '../uploads/upload-state.js';

/** The client's socket address of each request we hand to @tus/server (it passes the same Request to its callbacks). */
const remoteAddresses = new WeakMap<Request, string>();

/** The id @tus/server gave the upload a POST created, for the request log and the hook flush. */
const createdIds = new WeakMap<Request, string>();

/** The id of the upload this request created, once @tus/server named it. */
export function createdUploadId(req: Request): string | undefined {
  return createdIds.get(req);
}

/** The streaming digest of each request whose body we feed to @tus/server. */
const digestTaps = new WeakMap<Request, DigestTap>();

/** Remembers the digest tap of a request about to be handed to @tus/server: its finish hands the digest to processing. */
export function rememberDigestTap(req: Request, tap: DigestTap | undefined): void {
  if (tap) digestTaps.set(req, tap);
}

/** Requests creating a partial upload (`Upload-Concat: partial`, a header @tus/server would refuse). */
const partials = new WeakSet<Request>();

/** Marks a request about to be handed to @tus/server as the creation of a partial upload. */
export function rememberPartial(req: Request): void {
  partials.add(req);
}

/** Who makes each request we hand to @tus/server, as authentication verified it. */
const actors = new WeakMap<Request, Actor>();

/** Remembers the verified actor of a request about to be handed to @tus/server. */
export function rememberActor(req: Request, actor: Actor | undefined): void {
  if (actor) actors.set(req, actor);
}

/** The verified actor of a request handed to @tus/server; undefined when authentication is off. */
export function actorOf(req: Request): Actor | undefined {
  return actors.get(req);
}

/** Remembers the client address of a request about to be handed to @tus/server. */
export function rememberRemoteAddress(req: Request, address: string | undefined): void {
  if (address) remoteAddresses.set(req, address);
}

/** Headers that carry credentials: a hook receiver (and its logs, and the queue on disk) never sees them. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization', 'x-api-key']);

/** Each request's hook view, built once (creation and finish both ask for it). */
const hookRequests = new WeakMap<Request, HookRequest>();

/** The request as hooks see it: plain data, without credentials, with the verified subject. */
export function hookRequest(req: Request): HookRequest {
  let built = hookRequests.get(req);
  if (!built) hookRequests.set(req, (built = buildHookRequest(req)));
  return built;
}

function buildHookRequest(req: Request): HookRequest {
  const headers: Record<string, string> = {};
  req.headers.forEach((value, name) => {
    if (!CREDENTIAL_HEADERS.has(name)) headers[name] = value;
  });
  const url = new URL(req.url);
  // Only when present: deleting re-serializes the whole query.
  if (url.searchParams.has('access_token')) url.searchParams.delete('access_token');
  return { method: req.method, uri: `${url.pathname}${url.search}`, remoteAddress: remoteAddresses.get(req) ?? null, subject: actorOf(req)?.subject ?? null, headers };
}

export const statusLink = (id: string) => `<${statusPath(id)}>; rel="status"`;

/**
 * The tus front-end's glue: @tus/server's callbacks and events, translated into the
 * upload core's calls. No rule lives here.
 */
export function uploadLifecycle(core: UploadCore) {
  /** What pre-terminate saw, for post-terminate; dropped with the request if the DELETE fails. */
  const terminating = new WeakMap<Request, HookUpload>();

  const onUploadCreate: NonNullable<ServerOptions['onUploadCreate']> = async (req, upload) => {
    createdIds.set(req, upload.id);
    // @tus/server decodes every value as UTF-8, which corrupts binary ones: read the client's header again.
    const sent = parseMetadataHeader(req.headers.get('upload-metadata')) ?? { metadata: {}, binaryKeys: [] };
    // Refused before the pre-create hook and before @tus/server stores anything: a 400 leaves no upload.
    const declared = declaredSha256(req.headers.get('repr-digest'), sent);
    if (declared instanceof HttpError) throw declared;
    const concat = partials.has(req) ? ({ kind: 'partial' } as const) : SINGLE;
    return { metadata: await core.beforeCreate({ ...uploadStateOf(upload), ...sent, declaredSha256: declared, concat }, hookRequest(req), actorOf(req)) };
  };

  const onUploadFinish: NonNullable<ServerOptions['onUploadFinish']> = async (req, upload) => {
    // The digest counts only if the bytes it hashed are exactly the stored ones (upload.offset).
    const streamed = digestTaps.get(req)?.finish(upload.id, upload.offset);
    // @tus/server calls this after any PATCH that leaves the upload complete, an empty one at its end included.
    const appendedFrom = req.method === 'PATCH' ? Number(req.headers.get('upload-offset')) : undefined;
    const { rejected, failure } = await core.finished(uploadStateOf(upload), hookRequest(req), streamed, appendedFrom);
    if (failure) throw failure;
    if (rejected) throw rejected;
    return { headers: { Link: statusLink(upload.id) } };
  };

  const onIncomingRequest: NonNullable<ServerOptions['onIncomingRequest']> = async (req, id) => {
    if (req.method === 'PATCH') return core.beforeWrite(id, actorOf(req));
    if (req.method !== 'DELETE') return;
    const info = await core.beforeTerminate(id, hookRequest(req), actorOf(req));
    if (info) terminating.set(req, info);
  };

  /** Events: post-create, post-receive, post-terminate. */
  function listen(tus: Server): void {
    tus.on(EVENTS.POST_CREATE, (req: Request, upload: Upload) => core.created(uploadStateOf(upload), hookRequest(req)));
    // Only when someone listens: with a listener, @tus/server taps every chunk of every body.
    if (core.wantsProgress) tus.on(EVENTS.POST_RECEIVE, (_source: unknown, upload: Upload) => core.received(uploadStateOf(upload)));
    tus.on(EVENTS.POST_TERMINATE, (req: Request, _res: Response, id: string) => core.terminated(id, terminating.get(req), hookRequest(req)));
  }

  return { options: { onUploadCreate, onUploadFinish, onIncomingRequest }, listen };
}
