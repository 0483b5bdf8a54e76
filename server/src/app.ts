import { Hono } from 'hono';
import type { Locker } from '@tus/utils';
import type { Config } from './config.js';
import { HttpError, internalError } from './errors.js';
import type { AppEnv } from './http/app-env.js';
import { rejectWhileDraining } from './http/draining.js';
import { errorResponse } from './http/error-response.js';
import { ServerLifecycle } from './http/lifecycle.js';
import { requestLog } from './http/request-log.js';
import type { Logger } from './logger.js';
import { healthRoutes } from './routes/health.js';
import type { UploadStorage } from './storage/index.js';
import { createExpirySweeper, type ExpirySweeper } from './tus/expiry-sweeper.js';
import { createTusServer } from './tus/tus-server.js';
import { tusRoutes } from './tus/tus-routes.js';

export type AppDeps = Readonly<{ storage: UploadStorage; logger: Logger; locker?: Locker }>;

export type UploadServerApp = Readonly<{
  app: Hono<AppEnv>;
  lifecycle: ServerLifecycle;
  /** Expired-upload cleanup; main starts it, tests may call sweepOnce(). */
  sweeper: ExpirySweeper;
}>;

/** Builds the HTTP application. No sockets, no timers started: main.ts (or a test) does that. */
export function createApp(config: Config, { storage, logger, locker }: AppDeps): UploadServerApp {
  const lifecycle = new ServerLifecycle();
  const { tus, locker: tusLocker } = createTusServer({ config, storage, logger, locker });
  const sweeper = createExpirySweeper({
    storage,
    locker: tusLocker,
    logger,
    expiryMs: config.tus.uploadExpiryMs,
    intervalMs: config.tus.expirySweepIntervalMs,
  });

  const app = new Hono<AppEnv>();
  app.use(requestLog(logger));
  app.route('/', healthRoutes({ storage, lifecycle, logger }));
  app.use(rejectWhileDraining(lifecycle));
  app.route('/', tusRoutes({ config, tus, storage, lifecycle }));

  app.notFound(() => errorResponse(new HttpError('ERR_NOT_FOUND', 'no such resource')));
  app.onError((error, c) => {
    if (error instanceof HttpError) return errorResponse(error);
    logger.error({ err: error, method: c.req.method, path: c.req.path, uploadId: c.get('uploadId') }, 'unhandled error');
    return errorResponse(internalError());
  });
  return { app, lifecycle, sweeper };
}
