import type { MiddlewareHandler } from 'hono';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AppEnv } from './app-env.js';

/** Longest value of a client-chosen field in a log line (path, subject, an overridden method). */
const MAX_FIELD = 200;

const truncated = (value: string | undefined): string | undefined => (value && value.length > MAX_FIELD ? `${value.slice(0, MAX_FIELD)}…` : value);

/**
 * One JSON line per request: method, path (never its query, where `?access_token=` would be),
 * the subject that authentication verified, the upload id, status, bytes in and out, duration.
 * No header value, token, cookie or metadata is logged. The same numbers feed the request metrics.
 */
export function requestLog(logger: Logger, metrics?: Pick<Metrics, 'request'>): MiddlewareHandler<AppEnv> {
  return async function requestLogger(c, next) {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const elapsedMs = performance.now() - started;
    const bytesIn = c.get('bytesIn');
    const override = c.req.header('x-http-method-override') || undefined;
    // Counted as the method it stands for, as the tus routes treat it (a PATCH sent as POST through a proxy).
    metrics?.request(override ? override.trim().toUpperCase() : c.req.method, status, elapsedMs / 1000, bytesIn);
    const line = {
      method: c.req.method,
      override: truncated(override),
      path: truncated(c.req.path),
      subject: truncated(c.get('actor')?.subject),
      uploadId: c.get('uploadId'),
      status,
      bytesIn,
      bytesOut: Number(c.res.headers.get('content-length') ?? 0) || undefined,
      durationMs: Math.round(elapsedMs),
    };
    if (status >= 500) logger.error(line, 'request failed');
    else logger.info(line, 'request');
  };
}
