import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { HttpError } from '../errors.js';
import type { AppEnv } from '../http/app-env.js';
import { errorResponse } from '../http/error-response.js';
import type { Metrics } from './metrics.js';

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Whether `Authorization` is `Bearer <token>`, compared in constant time (both sides hashed to one length first). */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return timingSafeEqual(digest(match?.[1] ?? ''), expected) && match !== null;
}

/**
 * GET /metrics in Prometheus text format. Not behind the uploads' authentication (a
 * scraper has no user token): behind METRICS_TOKEN when it is set, open otherwise.
 */
export function metricsRoutes({ metrics, token }: { metrics: Metrics; token: string | undefined }) {
  const routes = new Hono<AppEnv>();
  const expected = token === undefined ? undefined : digest(token);
  routes.get('/metrics', async (c) => {
    if (expected && !bearerMatches(c.req.header('authorization'), expected)) {
      return errorResponse(new HttpError('ERR_UNAUTHORIZED', 'metrics need the bearer token METRICS_TOKEN names', { 'WWW-Authenticate': 'Bearer realm="metrics"' }));
    }
    return new Response(await metrics.render(), { headers: { 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' } });
  });
  return routes;
}
