import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

/**
 * Vitest globalSetup: installs (if needed) and starts the test Redis of e2e/services/redis.sh,
 * then hands its URL to the tests through `provide` (read with `inject('redisUrl')`; tests in
 * server/src never read process.env). The server is stopped afterwards only if this setup
 * started it. Honours REDIS_PORT / REDIS_STATE_DIR like the script.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    /** redis://host:port of the test Redis; undefined when this globalSetup is not configured. */
    redisUrl?: string;
  }
}

const script = fileURLToPath(new URL('./redis.sh', import.meta.url));
const run = promisify(execFile);

async function redis(command: 'install' | 'start' | 'stop' | 'status' | 'env', timeout = 120_000): Promise<string> {
  const { stdout } = await run(script, [command], { timeout, maxBuffer: 1 << 20 });
  return stdout;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const wasRunning = await redis('status', 10_000).then(
    () => true,
    () => false,
  );
  if (!wasRunning) {
    await redis('install', 600_000);
    await redis('start', 60_000);
  }
  const url = /REDIS_URL=(\S+)/.exec(await redis('env', 10_000))?.[1];
  if (!url) throw new Error('e2e/services/redis.sh env printed no REDIS_URL');
  project.provide('redisUrl', url);
  return async () => {
    if (!wasRunning) await redis('stop', 30_000);
  };
}
