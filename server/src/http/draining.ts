import type { MiddlewareHandler } from 'hono';
import { HttpError } from '../errors.js';
import type { AppEnv } from './app-env.js';
import { errorResponse } from './error-response.js';
import type { ServerLifecycle } from './lifecycle.js';
import { TUS_VERSION } from '../tus/protocol-guard.js';

/** While shutting down, new requests get 503 and a hint to retry (tus clients do). */
export function rejectWhileDraining(lifecycle: ServerLifecycle): MiddlewareHandler<AppEnv> {
  return async function drainingGate(c, next) {
    if (!lifecycle.isDraining) return next();
    return errorResponse(new HttpError('ERR_SERVER_SHUTTING_DOWN', 'the server is shutting down; retry in a few seconds'), {
      'Retry-After': '5',
      Connection: 'close',
      'Tus-Resumable': TUS_VERSION,
    });
  };
}
