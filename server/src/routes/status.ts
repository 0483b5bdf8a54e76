import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { HttpError } from '../errors.js';
import type { Config } from '../config.js';
import type { AppEnv } from '../http/app-env.js';
import type { Authenticator } from '../http/auth.js';
import { corsHeaders } from '../http/cors.js';
import { limitSubject, type Limits } from '../limits/limits.js';
import type { StatusRecord, StatusStore, StatusState } from '../processing/status-store.js';
import type { ArtifactStore } from '../storage/index.js';
import type { UrlSigner } from '../http/signed-urls.js';
import type { Actor } from '../uploads/actor.js';
import { mayAccess } from '../uploads/ownership.js';
import { isComplete, type UploadState } from '../uploads/upload-state.js';
import { plainMetadata } from '../upload-metadata.js';

export type UploadStatus = Readonly<{
  id: string;
  state: StatusState;
  offset: number | null;
  length: number | null;
  metadata: Record<string, string>;
  /** Present when some metadata values are not text: their keys (those values are base64). */
  binaryMetadataKeys?: readonly string[];
  /** Each processor's outcome: `{ ok, result }` or `{ ok: false, error }`. */
  processors: StatusRecord['processors'];
  error: string | null;
  uploadUrl: string;
  /**
   * Where a browser may download the finished upload as a plain link: with authentication on,
   * a signed link that grants that download only, for a short time (SIGNED_URL_TTL).
   */
  downloadUrl: string | null;
  /** The server-sent events of this status, signed like downloadUrl (an EventSource sends no Authorization). */
  eventsUrl: string;
  /** The poster frame (/uploads/<id>/poster) once the poster processor stored one, signed like downloadUrl. */
  posterUrl: string | null;
  updatedAt: string | null;
}>;

const TERMINAL: readonly StatusState[] = ['done', 'failed', 'rejected'];
const SSE_POLL_MS = 1000;
const SSE_MAX_MS = 60 * 60_000;

/** The status resource's path for an upload id; the finish response links to it. */
export const statusPath = (id: string) => `/uploads/${id}`;

/**
 * `GET /uploads/<id>`: where an upload stands, from receiving bytes to processed, with each
 * processor's result. `GET /uploads/<id>/events`: the same as server-sent events until it
 * settles. Clients poll the first or listen to the second after their last PATCH.
 */
export type StatusRoutesDeps = Readonly<{
  /** The upload's state from the core (404/410 as HttpError), as `actor` may see it. */
  stateOf(id: string, actor?: Actor): Promise<UploadState>;
  statuses: StatusStore;
  tusPath: string;
  cors: Config['cors'];
  isValidId(id: string): boolean;
  /** Set when requests need credentials (a token, an API key, or a link signed by `signer`). */
  authenticate?: Authenticator;
  /** Signs the download and events links handed out; absent when authentication is off (plain paths then). */
  signer?: UrlSigner;
  /** Caps each subject's open event streams (MAX_EVENT_STREAMS); none without. */
  limits?: Pick<Limits, 'openStream'>;
  /** Whether the client address comes from X-Forwarded-For (TRUST_PROXY), for the limits. */
  trustProxy?: boolean;
  /** Where the poster frame is stored (storage.artifacts); without it /uploads/<id>/poster answers 404. */
  artifacts?: Pick<ArtifactStore, 'read'>;
}>;

/** The poster processor's record, when it stored a frame. */
function posterOf(record: StatusRecord | undefined): { artifact: string; contentType: string } | undefined {
  const poster = record?.processors.poster;
  const result = poster?.ok ? (poster.result as { artifact?: unknown; contentType?: unknown } | undefined) : undefined;
  return typeof result?.artifact === 'string' && typeof result.contentType === 'string' ? { artifact: result.artifact, contentType: result.contentType } : undefined;
}

export function statusRoutes({ stateOf, statuses, tusPath, cors, isValidId, authenticate, signer, limits, trustProxy = false, artifacts }: StatusRoutesDeps) {
  const link = (path: string) => (signer ? signer.sign(path) : path);

  async function describe(id: string, actor?: Actor): Promise<UploadStatus> {
    if (!isValidId(id)) throw new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found');
    let gone: HttpError | undefined;
    const [upload, record] = await Promise.all([
      stateOf(id).catch((error: unknown) => {
        if (error instanceof HttpError && error.code === 'ERR_UPLOAD_NOT_FOUND') return undefined;
        // Bytes deleted after processing (DELETE_AFTER_PROCESSING): the status record still answers.
        if (error instanceof HttpError && error.code === 'ERR_UPLOAD_GONE') {
          gone = error;
          return null;
        }
        throw error;
      }),
      statuses.get(id),
    ]);
    // Expired, with no record to answer from: the 410 as the core gave it.
    if (upload === null && !record && gone) throw gone;
    // A rejected upload may have been deleted; its status record still answers, to its owner.
    if (!upload && !record) throw new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found');
    if (!mayAccess({ owner: upload ? upload.owner : record?.owner }, actor)) throw new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found');
    const state: StatusState = record?.state ?? (upload && isComplete(upload) ? 'processing' : 'uploading');
    return {
      id,
      state,
      offset: upload?.offset ?? null,
      length: upload?.length ?? null,
      metadata: plainMetadata(upload?.metadata),
      ...(upload && upload.binaryKeys.length > 0 ? { binaryMetadataKeys: upload.binaryKeys } : {}),
      processors: record?.processors ?? {},
      error: record?.error ?? null,
      uploadUrl: `${tusPath}/${id}`,
      downloadUrl: upload && isComplete(upload) ? link(`${tusPath}/${id}`) : null,
      eventsUrl: link(`${statusPath(id)}/events`),
      posterUrl: posterOf(record) ? link(`${statusPath(id)}/poster`) : null,
      updatedAt: record?.updatedAt ?? null,
    };
  }

  const routes = new Hono<AppEnv>();
  // Browsers on another origin poll this after uploading: they need CORS headers to read it,
  // errors included.
  routes.use('/uploads/*', async function statusCors(c, next) {
    const headers = corsHeaders(cors, c.req.header('origin'));
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
    await next();
    if (c.res.status >= 400) for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
  });
  // A page on another origin that sends Authorization asks first.
  routes.options('/uploads/*', (c) => {
    // An origin not on CORS_ORIGINS gets no Access-Control-* header at all.
    if (corsHeaders(cors, c.req.header('origin'))['Access-Control-Allow-Origin'] !== undefined) {
      c.header('Access-Control-Allow-Methods', 'GET, OPTIONS');
      c.header('Access-Control-Allow-Headers', 'Authorization');
      c.header('Access-Control-Max-Age', '86400');
    }
    return c.body(null, 204);
  });
  if (authenticate) {
    routes.use('/uploads/*', async function requireToken(c, next) {
      const outcome = await authenticate(c.req.raw);
      if (outcome.refused) throw outcome.refused;
      c.set('actor', outcome.actor);
      await next();
    });
  }
  routes.get('/uploads/:id', async (c) => {
    c.set('uploadId', c.req.param('id'));
    c.header('Cache-Control', 'no-store');
    return c.json(await describe(c.req.param('id'), c.get('actor')));
  });
  // The poster frame, under the same authentication and ownership as the status (describe).
  routes.get('/uploads/:id/poster', async (c) => {
    const id = c.req.param('id');
    c.set('uploadId', id);
    await describe(id, c.get('actor'));
    const poster = posterOf(await statuses.get(id));
    const bytes = poster && (await artifacts?.read(id, poster.artifact));
    if (!poster || !bytes) throw new HttpError('ERR_NOT_FOUND', 'this upload has no poster frame');
    return c.body(new Uint8Array(bytes), 200, {
      'Content-Type': poster.contentType,
      'Content-Length': String(bytes.byteLength),
      'Cache-Control': 'private, max-age=300',
      'X-Content-Type-Options': 'nosniff',
    });
  });
  routes.get('/uploads/:id/events', async (c) => {
    const id = c.req.param('id');
    c.set('uploadId', id);
    const actor = c.get('actor');
    const first = await describe(id, actor);
    // Each stream polls storage for up to an hour: a subject holds at most MAX_EVENT_STREAMS (429 beyond), freed as each ends.
    const client = { remoteAddress: c.env?.incoming?.socket?.remoteAddress, forwardedFor: c.req.header('x-forwarded-for') };
    const slot = await limits?.openStream(limitSubject(actor?.subject, client, trustProxy));
    return streamSSE(c, async (stream) => {
      let last = '';
      let wake: (() => void) | undefined;
      // Set by an update that lands while we are not waiting (say mid-describe): look again at once.
      let changed = false;
      const unsubscribe = statuses.subscribe(id, () => {
        changed = true;
        wake?.();
      });
      stream.onAbort(() => wake?.());
      const started = Date.now();
      try {
        let current = first;
        while (!stream.aborted && Date.now() - started < SSE_MAX_MS) {
          const data = JSON.stringify(current);
          if (data !== last) {
            await stream.writeSSE({ event: 'status', data });
            last = data;
          }
          if (TERMINAL.includes(current.state)) break;
          if (!changed) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, SSE_POLL_MS).unref();
            });
          }
          changed = false;
          current = await describe(id, actor).catch(() => current);
        }
      } finally {
        unsubscribe();
        await slot?.close().catch(() => undefined);
      }
    });
  });
  return routes;
}
