import { Hono } from 'hono';
import type { AppEnv } from '../http/app-env.js';
import type { ServerLifecycle } from '../http/lifecycle.js';
import type { Logger } from '../logger.js';
import type { FreeSpace } from '../storage/free-space.js';
import type { UploadStorage } from '../storage/index.js';
import { formatBytes } from '../units/byte-size.js';

/** A service the server cannot take uploads without, besides storage (Redis, for several instances). */
export type ReadinessCheck = Readonly<{ name: string; check(): Promise<void> }>;

/** /healthz: the process answers. /readyz: it can take uploads (storage writable with MIN_FREE_SPACE to spare, services answering, not draining). */
export function healthRoutes({
  storage,
  services = [],
  lifecycle,
  logger,
  freeSpace,
}: {
  storage: UploadStorage;
  /** Below its minimum, new uploads are refused: a load balancer should send them elsewhere. */
  freeSpace?: FreeSpace;
  services?: readonly ReadinessCheck[];
  lifecycle: ServerLifecycle;
  logger: Logger;
}) {
  const routes = new Hono<AppEnv>();
  routes.get('/healthz', (c) => c.json({ status: 'ok' }));
  routes.get('/readyz', async (c) => {
    if (lifecycle.isDraining) return c.json({ status: 'draining' }, 503);
    // First: on a full disk the write probe below fails too, with a vaguer reason.
    if (freeSpace && (await freeSpace.isLow())) {
      logger.warn({ minFreeSpace: freeSpace.minimumBytes, available: await freeSpace.available() }, 'readiness check failed: storage low on space');
      return c.json({ status: 'unavailable', reason: `STORAGE_DIR has less than MIN_FREE_SPACE (${formatBytes(freeSpace.minimumBytes)}) free` }, 503);
    }
    try {
      await storage.checkReady();
    } catch (error) {
      logger.warn({ err: error }, 'readiness check failed');
      return c.json({ status: 'unavailable', reason: `${storage.kind} storage is not writable` }, 503);
    }
    for (const service of services) {
      try {
        await service.check();
      } catch (error) {
        logger.warn({ err: error, service: service.name }, 'readiness check failed');
        return c.json({ status: 'unavailable', reason: `${service.name} is not answering` }, 503);
      }
    }
    return c.json({ status: 'ready', storage: storage.kind, ...(services.length > 0 ? { services: services.map((s) => s.name) } : {}) });
  });
  return routes;
}
