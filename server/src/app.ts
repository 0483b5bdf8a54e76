import { Hono } from 'hono';
import type { Config } from './config.js';
import { HttpError, internalError, isServiceUnavailable, serviceUnavailable } from './errors.js';
import { createHookDispatcher } from './hooks/hook-dispatcher.js';
import type { HookHandlers } from './hooks/types.js';
import type { AppEnv } from './http/app-env.js';
import { createAuthenticator } from './http/auth.js';
import { varyOrigin } from './http/cors.js';
import { createUrlSigner, signingKey } from './http/signed-urls.js';
import { isWithinPath, rejectDotSegments } from './http/dot-segments.js';
import { ietfRoutes } from './ietf/ietf-routes.js';
import { rejectWhileDraining } from './http/draining.js';
import { errorResponse } from './http/error-response.js';
import { ServerLifecycle } from './http/lifecycle.js';
import { requestLog } from './http/request-log.js';
import type { LimitCounters } from './limits/limit-counters.js';
import { createLimits } from './limits/limits.js';
import type { Logger } from './logger.js';
import { instrumentLocker } from './metrics/instrument-locker.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { metricsRoutes } from './metrics/metrics-route.js';
import { createProcessingState, defaultProcessors, type ProcessingStores } from './processing/index.js';
import { createProcessing, type Processing } from './processing/processing-service.js';
import type { Processor } from './processing/processors/types.js';
import { demoPageRoutes } from './routes/demo-page.js';
import { healthRoutes, type ReadinessCheck } from './routes/health.js';
import { statusRoutes } from './routes/status.js';
import { createFreeSpace } from './storage/free-space.js';
import type { UploadStorage } from './storage/index.js';
import { isStorageFull, storageFull } from './storage/storage-errors.js';
import { createExpirySweeper, type ExpirySweeper } from './tus/expiry-sweeper.js';
import { uploadLifecycle } from './tus/upload-lifecycle.js';
import { isValidUploadId } from './tus/upload-id.js';
import { createTusServer } from './tus/tus-server.js';
import { createMemoryLocker } from './uploads/memory-locker.js';
import { cacheUploadStates } from './uploads/state-cache.js';
import { createUploadCore } from './uploads/upload-core.js';
import type { UploadLocker } from './uploads/upload-locker.js';
import { tusRoutes, uploadNotFound } from './tus/tus-routes.js';

export type AppDeps = Readonly<{
  storage: UploadStorage;
  logger: Logger;
  locker?: UploadLocker;
  /** Hooks for programs that embed the server; HOOKS_URL works alongside them. */
  hooks?: HookHandlers;
  /** Replaces the standard processors (PROCESSORS: size, sha256, type, media, poster); see README, Media processing. */
  processors?: readonly Processor[];
  /** Replaces the embedded queue and status store. */
  state?: ProcessingStores;
  /** Services /readyz checks besides storage (Redis). */
  services?: readonly ReadinessCheck[];
  /** Where the per-subject limits count (Redis for several instances); in memory without. */
  limitCounters?: LimitCounters;
}>;

export type UploadServerApp = Readonly<{
  app: Hono<AppEnv>;
  lifecycle: ServerLifecycle;
  /** Expired-upload cleanup; main starts it, tests may call sweepOnce(). */
  sweeper: ExpirySweeper;
  processing: Processing;
  state: ProcessingStores;
  /** This app's Prometheus metrics (GET /metrics); other parts count into it. */
  metrics: Metrics;
  /** Starts background work: the job queue, the first processing sweep, the expiry timer. */
  startBackground(): Promise<void>;
  /** Stops background work and waits for running jobs. */
  stopBackground(): Promise<void>;
}>;

/** Builds the HTTP application. No sockets, no timers started: main.ts (or a test) does that. */
export function createApp(config: Config, deps: AppDeps): UploadServerApp {
  const { logger } = deps;
  // One instance sees every change: its readers (HEAD, GET, status) answer from memory. A
  // locker from outside (Redis) means other instances write the same uploads: no cache.
  const storage = config.redis || deps.locker ? deps.storage : cacheUploadStates(deps.storage);
  const lifecycle = new ServerLifecycle();
  const metrics = createMetrics({ uploadsInProgress: () => lifecycle.activeUploads });
  deps.storage.observeRequests?.(metrics.s3Request);
  const state = deps.state ?? createProcessingState(config, logger, storage);
  const hooks = createHookDispatcher({
    handlers: deps.hooks ?? {},
    http: config.hooks.http,
    blockingTimeoutMs: config.hooks.timeoutMs,
    queue: state.queue,
    logger,
    metrics,
    // The core is built below, on this dispatcher; stop requests come only once requests flow.
    onStopUpload: (uploadId) => core.stop(uploadId),
  });
  const locker = instrumentLocker(deps.locker ?? createMemoryLocker(), metrics);
  const processing = createProcessing({
    storage,
    queue: state.queue,
    statuses: state.statuses,
    processors: deps.processors ?? defaultProcessors(config, storage),
    hooks,
    logger,
    deleteRejected: config.processing.deleteRejected,
    deleteAfterProcessing: config.processing.deleteAfterProcessing,
    locker,
    metrics,
  });
  // Where new uploads' bytes land: the data directory, or with S3 the part buffers.
  const freeSpace = createFreeSpace({
    directory: config.storage.kind === 's3' ? config.storage.tempDirectory : config.storage.directory,
    minimumBytes: config.freeSpace.minimumBytes,
  });
  // An in-progress count outlives no upload: once UPLOAD_EXPIRY passed, the upload is gone anyway.
  const limits = createLimits({ limits: config.limits, counters: deps.limitCounters, staleAfterMs: config.tus.uploadExpiryMs, onLimited: (limit) => metrics.rateLimited.inc({ limit }) });
  const core = createUploadCore({ config, storage, locker, hooks, processing, statuses: state.statuses, lifecycle, logger, freeSpace, limits, metrics });
  const events = uploadLifecycle(core);
  const { tus } = createTusServer({ config, storage, logger, locker, callbacks: events.options });
  events.listen(tus);
  const sweeper = createExpirySweeper({
    storage,
    locker,
    logger,
    expiryMs: config.tus.uploadExpiryMs,
    intervalMs: config.tus.expirySweepIntervalMs,
    afterSweep: () => processing.reconcile().then(() => undefined),
    metrics,
    finishedRetentionMs: config.tus.finishedRetentionMs,
    onRemoved: (id) => core.expired(id),
  });

  // Signed links (downloads, status streams) instead of tokens in URLs; one key per deployment.
  const signer = config.auth ? createUrlSigner(signingKey(config.auth), config.auth.signedUrlTtlMs) : undefined;
  const authenticate = createAuthenticator(config.auth, signer);
  const app = new Hono<AppEnv>();
  app.use(requestLog(logger, metrics));
  // With a list of origins, every answer depends on Origin: caches must keep them apart.
  app.use(varyOrigin(config.cors));
  // Before every route: a dot segment in the raw path (`/files/%2e%2e`) would be routed by the resolved one.
  app.use(
    rejectDotSegments((c, rawPath) =>
      isWithinPath(rawPath, config.tus.path) ? uploadNotFound(config.cors, c.req.raw) : errorResponse(new HttpError('ERR_NOT_FOUND', 'no such resource')),
    ),
  );
  app.route('/', healthRoutes({ storage, services: deps.services, lifecycle, logger, freeSpace }));
  // Beside the health routes: not behind the uploads' authentication, and answering while draining.
  app.route('/', metricsRoutes({ metrics, token: config.metrics.token }));
  app.use(rejectWhileDraining(lifecycle));
  app.route('/', statusRoutes({ stateOf: core.stateOf, statuses: state.statuses, tusPath: config.tus.path, cors: config.cors, isValidId: isValidUploadId, authenticate, signer, limits, trustProxy: config.server.trustProxy, artifacts: storage.artifacts }));
  // Exact GET routes (`/`, `/demo/<asset>`): ahead of the tus routes so TUS_PATH=/demo cannot hide the page.
  app.route('/', demoPageRoutes({ tusPath: config.tus.path }));
  // Requests carrying Upload-Draft-Interop-Version are the IETF protocol's; the others go on to the tus routes.
  app.route('/', ietfRoutes({ config, core, storage, locker, lifecycle, authenticate }));
  app.route('/', tusRoutes({ config, tus, core, storage, lifecycle, authenticate }));

  app.notFound(() => errorResponse(new HttpError('ERR_NOT_FOUND', 'no such resource')));
  app.onError((error, c) => {
    if (error instanceof HttpError) return errorResponse(error);
    // Before the outage check, which would call MinIO's 507 a 503.
    if (isStorageFull(error)) {
      logger.error({ err: error, method: c.req.method, path: c.req.path, uploadId: c.get('uploadId') }, 'storage full');
      return errorResponse(storageFull());
    }
    if (isServiceUnavailable(error)) {
      logger.error({ err: error, method: c.req.method, path: c.req.path, uploadId: c.get('uploadId') }, 'storage or shared state unavailable');
      return errorResponse(serviceUnavailable());
    }
    logger.error({ err: error, method: c.req.method, path: c.req.path, uploadId: c.get('uploadId') }, 'unhandled error');
    return errorResponse(internalError());
  });

  let startupSweep: Promise<void> = Promise.resolve();
  return {
    app,
    lifecycle,
    sweeper,
    processing,
    state,
    metrics,
    async startBackground() {
      state.queue.start({
        run: (job) => (job.kind === 'process-upload' ? processing.run(job) : hooks.deliver(job)),
        dead: (job, error) => (job.kind === 'process-upload' ? processing.dead(job, error) : Promise.resolve()),
      });
      // Finished uploads whose processing was never queued (a crash between the last byte
      // and the queue) are found here; it runs beside the first requests.
      startupSweep = processing.reconcile().then(
        () => undefined,
        (error: unknown) => logger.error({ err: error }, 'processing sweep failed'),
      );
      sweeper.start();
    },
    async stopBackground() {
      await sweeper.stop();
      await startupSweep;
      await state.queue.stop();
    },
  };
}
