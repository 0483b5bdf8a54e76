import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/**
 * Two installs into clean folders, every dependency for the build stage (about 50 s from npm's
 * cache on two busy cores) and the production ones for the image (5-60 s), then tsc (about
 * 10 s); the rest takes a few seconds.
 */
const SCRIPT_TIMEOUT_MS = 300_000;
/** After SIGTERM the script kills the server and npm it started and removes its folder. */
const CLEANUP_GRACE_MS = 10_000;

type Outcome = { code: number | null; signal: NodeJS.Signals | null; output: string; ms: number };

/**
 * CI has no Docker engine: this runs docker/Dockerfile's install, build and start steps
 * outside it (docker/run-without-docker.ts, which reads them from the Dockerfile), so a build
 * that fails, a runtime package that only devDependencies list, a file the image leaves out,
 * TypeScript run at start-up, or a start that ignores SIGTERM fails `npm test`.
 */
describe('docker/Dockerfile steps, run without Docker', () => {
  let script: ChildProcess | undefined;

  afterAll(() => {
    if (script?.pid !== undefined && script.exitCode === null && script.signalCode === null) process.kill(script.pid, 'SIGKILL');
  });

  it('compiles the server in a build stage, installs production dependencies into a clean folder, starts the compiled entry, passes its HEALTHCHECK, takes an upload, serves the demo page and exits 0 on SIGTERM', async () => {
    const started = Date.now();
    const outcome = await new Promise<Outcome>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'docker/run-without-docker.ts'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      script = child;
      let output = '';
      child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      let killer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        output += `\n[test] no result within ${SCRIPT_TIMEOUT_MS} ms: SIGTERM\n`;
        if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
        killer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), CLEANUP_GRACE_MS);
      }, SCRIPT_TIMEOUT_MS);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        clearTimeout(killer);
        resolve({ code, signal, output, ms: Date.now() - started });
      });
    });

    expect(outcome.code, outcome.output).toBe(0);
    for (const step of [
      /run {3}RUN npm ci --ignore-scripts/,
      /run {3}RUN npm run build/,
      /run {3}RUN npm ci --omit=dev/,
      /check node_modules holds no devDependency/,
      /check CMD runs compiled JavaScript: server\/dist\/main\.js is in the image, no \.ts file or loader/,
      /check HEALTHCHECK command passed/,
      /check tus upload: POST 201, PATCH 204, HEAD 200, GET "hello world"/,
      /check demo page: GET \/ 200 and the scripts and styles it loads 200/,
      /check SIGTERM: exit code 0/,
    ]) {
      expect(outcome.output, outcome.output).toMatch(step);
    }
  }, SCRIPT_TIMEOUT_MS + CLEANUP_GRACE_MS + 10_000);
});
