import { Hono } from 'hono';
import type { AppEnv } from '../http/app-env.js';
import type { ServerLifecycle } from '../http/lifecycle.js';
import type { Logger } from '../logger.js';
import type { UploadStorage } from '../storage/index.js';

/** /healthz: the process answers. /readyz: it can take uploads (storage writable, not draining). */
export function healthRoutes({ storage, lifecycle, logger }: { storage: UploadStorage; lifecycle: ServerLifecycle; logger: Logger }) {
  const routes = new Hono<AppEnv>();
  routes.get('/healthz', (c) => c.json({ status: 'ok' }));
  routes.get('/readyz', async (c) => {
    if (lifecycle.isDraining) return c.json({ status: 'draining' }, 503);
    try {
      await storage.checkReady();
      return c.json({ status: 'ready', storage: storage.kind });
    } catch (error) {
      logger.warn({ err: error }, 'readiness check failed');
      return c.json({ status: 'unavailable', reason: `${storage.kind} storage is not writable` }, 503);
    }
  });
  return routes;
}
