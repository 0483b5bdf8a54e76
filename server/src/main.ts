import { createApp } from './app.js';
import { ConfigError, parseConfig } from './config.js';
import { startServer, type RunningServer } from './http/serve.js';
import { startupWarnings } from './http/startup-warnings.js';
import { createLogger } from './logger.js';
import { processorWarnings, queueSettings } from './processing/index.js';
import { createStorage } from './storage/index.js';

/** A URL for messages: the password, if any, replaced. */
function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** The only reader of process.env: parse, build, listen, and stop cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger(config.log);

  // Several instances share locks, the job queue, status and the S3 metadata cache on Redis.
  // Loaded on demand: a single instance does without ioredis (and the memory it takes).
  const redis = config.redis ? (await import('./redis/index.js')).createRedisBackend({ url: config.redis.url, prefix: config.redis.prefix, logger, ...queueSettings(config) }) : undefined;
  if (redis) {
    try {
      await redis.checkReady(10_000);
    } catch (error) {
      process.stderr.write(`REDIS_URL: cannot reach ${redactUrl(config.redis?.url ?? '')}: ${(error as Error).message}\n`);
      process.exit(1);
    }
  }

  let storage;
  try {
    storage = await createStorage(config, { metadataCache: redis?.metadataCache() });
    await storage.checkReady();
  } catch (error) {
    const variable = config.storage.kind === 's3' ? 'S3_BUCKET' : 'STORAGE_DIR';
    const where = config.storage.kind === 's3' ? `bucket ${config.storage.bucket}` : config.storage.directory;
    process.stderr.write(`${variable}: cannot use ${where} for uploads: ${(error as Error).message}\n`);
    process.exit(1);
  }

  const uploadServer = createApp(config, {
    storage,
    logger,
    ...(redis ? { locker: redis.locker, state: redis.state, limitCounters: redis.limitCounters, services: [{ name: 'redis', check: () => redis.checkReady() }] } : {}),
  });
  // Filled once listening; the signal handlers below exist before that.
  const server: { running?: RunningServer } = {};
  let stopping = false;
  // Handlers go in before the server listens: a supervisor may signal the moment we report ready.
  const stop = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'signal received');
    if (stopping) process.exit(1); // a second signal ends a draining server at once
    stopping = true;
    // A shutdown that overruns ends the process regardless.
    setTimeout(() => process.exit(1), config.server.shutdownTimeoutMs + 5_000).unref();
    // The server's shutdown stops the background work that uses Redis; Redis is closed after it.
    (server.running?.shutdown() ?? Promise.resolve())
      .then(() => redis?.close())
      .then(
        () => {
          logger.flush();
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  const running = await startServer(config, uploadServer, logger);
  server.running = running;
  await uploadServer.startBackground();
  process.stdout.write(`listening on ${running.url}\n`);
  logger.info({ url: running.url, storage: storage.kind, maxUploadSize: config.tus.maxUploadSize }, 'server started');
  for (const warning of startupWarnings(config)) logger.warn(warning);
  // media and poster without ffprobe/ffmpeg: skipped, said once here.
  for (const warning of processorWarnings(config)) logger.warn(warning);
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
}

main().catch((error: unknown) => {
  process.stderr.write(`startup failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
