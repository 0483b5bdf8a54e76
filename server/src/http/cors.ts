import type { MiddlewareHandler } from 'hono';
import type { Config } from '../config.js';

/** Headers a browser script may read: the tus ones, and what downloads and errors carry. */
export const EXPOSED_HEADER_NAMES = [
  'Location',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Metadata',
  'Upload-Defer-Length',
  'Upload-Expires',
  'Upload-Concat',
  // The IETF resumable upload protocol's answers (server/src/ietf).
  'Upload-Complete',
  'Upload-Incomplete',
  'Upload-Limit',
  'Upload-Draft-Interop-Version',
  'Tus-Resumable',
  'Tus-Version',
  'Tus-Extension',
  'Tus-Max-Size',
  'Tus-Checksum-Algorithm',
  'Content-Disposition',
  'Content-Range',
  'Content-Length',
  'Accept-Ranges',
  'Retry-After',
  'Link',
  'Upload-Cut-Reason',
] as const;
const EXPOSED_HEADERS = EXPOSED_HEADER_NAMES.join(', ');

const ANY_ORIGIN: Readonly<Record<string, string>> = Object.freeze({ 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': EXPOSED_HEADERS });
const NO_ORIGIN: Readonly<Record<string, string>> = Object.freeze({ Vary: 'Origin' });
/** One frozen answer per allowed origin, made once: the request path allocates none. */
const perOrigin = new WeakMap<readonly string[], Map<string, Readonly<Record<string, string>>>>();

/**
 * CORS headers for the responses we write ourselves (errors before @tus/server runs,
 * HEAD, downloads). Without them a browser reports a rejected upload as a network error
 * and the user never sees why. The result is shared and frozen: spread it, never mutate it.
 */
export function corsHeaders(cors: Config['cors'], origin: string | undefined | null): Readonly<Record<string, string>> {
  if (cors.origins === '*') return ANY_ORIGIN;
  if (!origin || !cors.origins.includes(origin)) return NO_ORIGIN;
  let answers = perOrigin.get(cors.origins);
  if (!answers) {
    answers = new Map(cors.origins.map((allowed) => [allowed, Object.freeze({ 'Access-Control-Allow-Origin': allowed, 'Access-Control-Expose-Headers': EXPOSED_HEADERS, Vary: 'Origin' })]));
    perOrigin.set(cors.origins, answers);
  }
  return answers.get(origin) ?? NO_ORIGIN;
}

/** Adds `Origin` to a Vary header, once. */
function addVaryOrigin(headers: Headers): void {
  const vary = headers.get('vary');
  if (vary === null) headers.set('Vary', 'Origin');
  else if (!vary.split(',').some((name) => name.trim().toLowerCase() === 'origin' || name.trim() === '*')) headers.set('Vary', `${vary}, Origin`);
}

/**
 * With a list of origins, every answer depends on the request's Origin (allowed or not):
 * `Vary: Origin` on all of them, so a shared cache never hands one origin's answer to another.
 * With `*` the answer is the same for everyone and nothing is added.
 */
export function varyOrigin(cors: Config['cors']): MiddlewareHandler {
  return async function varyOriginHeader(c, next) {
    await next();
    if (cors.origins === '*') return;
    try {
      addVaryOrigin(c.res.headers);
    } catch {
      // A response whose headers are immutable (Response.redirect, a fetched one): copy it first.
      c.res = new Response(c.res.body, c.res);
      addVaryOrigin(c.res.headers);
    }
  };
}

/**
 * @tus/server answers a foreign origin (or none) with the first allowed origin: a browser on
 * that origin is then refused anyway, but the answer names an origin it should not, and
 * carries no Vary. Its CORS headers are kept for an allowed origin only.
 */
export function restrictCorsHeaders(headers: Headers, cors: Config['cors'], origin: string | null): void {
  if (cors.origins === '*') return;
  addVaryOrigin(headers);
  if (origin !== null && cors.origins.includes(origin)) return;
  for (const name of [...headers.keys()]) if (name.startsWith('access-control-')) headers.delete(name);
}
