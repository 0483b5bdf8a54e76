import type { MiddlewareHandler } from 'hono';
import type { Logger } from '../logger.js';
import type { AppEnv } from './app-env.js';

/** One JSON line per request: method, path, upload id, status, bytes in and out, duration. */
export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async function requestLogger(c, next) {
    const started = performance.now();
    await next();
    const status = c.res.status;
    const line = {
      method: c.req.method,
      override: c.req.header('x-http-method-override') || undefined,
      path: c.req.path.length > 200 ? `${c.req.path.slice(0, 200)}…` : c.req.path,
      uploadId: c.get('uploadId'),
      status,
      bytesIn: c.get('bytesIn'),
      bytesOut: Number(c.res.headers.get('content-length') ?? 0) || undefined,
      durationMs: Math.round(performance.now() - started),
    };
    if (status >= 500) logger.error(line, 'request failed');
    else logger.info(line, 'request');
  };
}
