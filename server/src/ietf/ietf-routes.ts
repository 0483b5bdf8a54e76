import { Hono, type Context, type Next } from 'hono';
import { HttpError } from '../errors.js';
import type { AppEnv } from '../http/app-env.js';
import { corsHeaders } from '../http/cors.js';
import { translateTusError } from '../tus/error-mapping.js';
import { uploadIdFromSegment } from '../tus/upload-id.js';
import { hookRequest, rememberActor, rememberRemoteAddress } from '../tus/upload-lifecycle.js';
import type { Actor } from '../uploads/actor.js';
import { appendUpload } from './append.js';
import { cancelUpload } from './cancellation.js';
import { createUpload } from './creation.js';
import { discover } from './discovery.js';
import { retrieveOffset } from './offset-retrieval.js';
import type { IetfDeps } from './ietf-deps.js';
import type { IetfRequest } from './ietf-request-context.js';
import { ietfErrorResponse, type IetfExchange } from './ietf-responses.js';
import { INTEROP_HEADER, INTEROP_VERSIONS, SERVED_VERSIONS, versionRules } from './interop-versions.js';

type Target = Readonly<{ kind: 'collection' }> | Readonly<{ kind: 'upload'; id: string }>;

/**
 * The IETF "Resumable Uploads for HTTP" front-end, on the same TUS_PATH and TUS_PATH/<id> as
 * tus 1.0: a request carrying `Upload-Draft-Interop-Version` is served here, by the rules of
 * its version (interop-versions.ts); any other goes on (`next()`) to the tus routes, which
 * are mounted after these. Only HTTP is translated here: the rules live in the upload core.
 */
export function ietfRoutes(deps: IetfDeps): Hono<AppEnv> {
  const { config } = deps;
  const routes = new Hono<AppEnv>();

  async function handle(c: Context<AppEnv>, next: Next, target: Target): Promise<Response | void> {
    const raw = c.req.raw;
    const header = raw.headers.get(INTEROP_HEADER);
    // Not ours; downloads (GET) stay the tus routes' whatever the headers say.
    if (header === null || raw.method === 'GET') return next();
    const cors = corsHeaders(config.cors, raw.headers.get('origin'));
    const rules = versionRules(header);
    if (target.kind === 'upload') c.set('uploadId', target.id);
    if (!rules) {
      // Never a silent tus 1.0 answer with other semantics: say what we speak.
      const latest = { rules: INTEROP_VERSIONS[8], cors, maxUploadSize: config.tus.maxUploadSize, expiryMs: config.tus.uploadExpiryMs };
      const error = new HttpError('ERR_UNSUPPORTED_INTEROP_VERSION', `${INTEROP_HEADER} ${JSON.stringify(header.slice(0, 20))} is not served; this server speaks interop versions ${SERVED_VERSIONS.join(', ')}`);
      const response = ietfErrorResponse(latest, error);
      response.headers.delete(INTEROP_HEADER);
      return response;
    }
    const exchange: IetfExchange = { rules, cors, maxUploadSize: config.tus.maxUploadSize, expiryMs: config.tus.uploadExpiryMs };
    if (raw.method === 'OPTIONS') return discover(exchange);

    // As the tus routes: OPTIONS stays open, everything else needs credentials when configured.
    let actor: Actor | undefined;
    if (deps.authenticate) {
      const outcome = await deps.authenticate(raw);
      if (outcome.refused) return ietfErrorResponse(exchange, outcome.refused);
      actor = outcome.actor;
      c.set('actor', actor);
    }
    rememberRemoteAddress(raw, c.env?.incoming?.socket?.remoteAddress);
    // Hooks get the verified subject, as with tus.
    rememberActor(raw, actor);
    const request: IetfRequest = { c, raw, exchange, actor, hook: hookRequest(raw) };

    try {
      if (target.kind === 'collection') {
        if (raw.method === 'POST') return await createUpload(deps, request);
      } else if (raw.method === 'PATCH') {
        return await appendUpload(deps, request, target.id);
      } else if (raw.method === 'HEAD') {
        return await retrieveOffset(deps, request, target.id);
      } else if (raw.method === 'DELETE') {
        return await cancelUpload(deps, request, target.id);
      }
    } catch (error) {
      // Storage full, a lock not granted in time, S3 or Redis not answering: the catalogue's answer. Anything else is a 500 (app.onError).
      const known = translateTusError(error, raw.headers, config.tus.maxUploadSize);
      if (known) return ietfErrorResponse(exchange, known);
      throw error;
    }
    const allowed = target.kind === 'collection' ? 'POST, OPTIONS' : 'HEAD, PATCH, DELETE, OPTIONS';
    return ietfErrorResponse(exchange, new HttpError('ERR_METHOD_NOT_ALLOWED', `${raw.method} is not part of the resumable upload protocol here; use ${allowed}`, { Allow: allowed }));
  }

  const base = config.tus.path;
  routes.all(base, (c, next) => handle(c, next, { kind: 'collection' }));
  routes.all(`${base}/`, (c, next) => handle(c, next, { kind: 'collection' }));
  routes.all(`${base}/:segment`, (c, next) => {
    const id = uploadIdFromSegment(new URL(c.req.url).pathname.slice(base.length + 1));
    // Not an upload id: the tus routes answer their 404.
    if (id === undefined) return next();
    return handle(c, next, { kind: 'upload', id });
  });
  return routes;
}
