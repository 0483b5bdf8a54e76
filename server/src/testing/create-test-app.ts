import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createApp, type AppDeps, type UploadServerApp } from '../app.js';
import { parseConfig, type Config, type Env } from '../config.js';
import { startServer, type RunningServer } from '../http/serve.js';
import { createStorage } from '../storage/index.js';

export type TestApp = UploadServerApp & {
  config: Config;
  storageDir: string;
  /** Removes the temporary storage directory. */
  cleanup(): Promise<void>;
};

/** What a test may hand to createApp besides configuration (storage and logger are made here). */
export type TestAppDeps = Partial<Omit<AppDeps, 'storage'>>;

/**
 * An app on file storage in a fresh temporary directory, for `app.request()` tests.
 * `env` overrides configuration exactly as environment variables would; `deps` (hooks,
 * processors, state, locker, a logger) go to createApp as they are.
 */
export async function createTestApp(env: Env = {}, deps: TestAppDeps = {}): Promise<TestApp> {
  const storageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-test-'));
  const config = parseConfig({ STORAGE_DIR: storageDir, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', ...env });
  const storage = await createStorage(config);
  const logger = deps.logger ?? pino({ level: config.log.level });
  const app = createApp(config, { ...deps, storage, logger });
  return {
    ...app,
    config,
    storageDir,
    cleanup: async () => {
      await app.stopBackground();
      await fs.rm(storageDir, { recursive: true, force: true });
    },
  };
}

/** The same app listening on 127.0.0.1 on a free port, for tests that need a real socket. */
export async function startTestServer(env: Env = {}, deps: TestAppDeps = {}): Promise<TestApp & { running: RunningServer; close(): Promise<void> }> {
  const testApp = await createTestApp(env, deps);
  await testApp.startBackground();
  const running = await startServer(testApp.config, testApp, pino({ level: 'silent' }));
  return {
    ...testApp,
    running,
    close: async () => {
      await running.shutdown();
      await testApp.cleanup();
    },
  };
}
