import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { UploadServerApp } from '../app.js';

export type RunningServer = Readonly<{
  server: Server;
  /** The real address, with the port the OS picked when PORT=0. */
  url: string;
  port: number;
  /** Graceful stop: 503 for new requests, bodies in flight cut and persisted, sockets closed. */
  shutdown(): Promise<void>;
}>;

/** Listens with Node's HTTP server tuned for long uploads. */
export function startServer(config: Config, { app, lifecycle, stopBackground }: UploadServerApp, logger: Logger): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port: config.server.port, hostname: config.server.host }) as Server;
    // Node's default requestTimeout (300 s) would kill any upload body slower than five
    // minutes; stalled clients are handled per body by IDLE_TIMEOUT instead.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    // Longer than the 60 s idle timeout of common load balancers, so they close first.
    server.keepAliveTimeout = 65_000;
    // Past this many open sockets Node closes new ones at once: a flood of idle connections
    // cannot take every file descriptor from the uploads in progress (MAX_CONNECTIONS).
    if (config.server.maxConnections > 0) server.maxConnections = config.server.maxConnections;
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
      let stopping: Promise<void> | undefined;

      const shutdown = () =>
        (stopping ??= (async () => {
          logger.info({ activeUploads: lifecycle.activeUploads }, 'shutting down');
          lifecycle.beginShutdown();
          const closed = new Promise<void>((done) => server.close(() => done()));
          server.closeIdleConnections();
          // A keep-alive connection whose response finishes after close() would otherwise
          // sit idle until the deadline: keep closing connections as they become idle.
          const reaper = setInterval(() => server.closeIdleConnections(), 100);
          const deadline = new Promise<'timeout'>((done) => setTimeout(done, config.server.shutdownTimeoutMs, 'timeout').unref());
          const outcome = await Promise.race([closed, deadline]);
          clearInterval(reaper);
          if (outcome === 'timeout') {
            logger.warn('shutdown timeout reached; closing remaining connections');
            server.closeAllConnections();
          }
          // Queued work is durable and idempotent: a job cut off here runs again after the next start.
          await Promise.race([stopBackground(), deadline]);
        })());

      resolve({ server, url: `http://${host}:${port}`, port, shutdown });
    });
  });
}
