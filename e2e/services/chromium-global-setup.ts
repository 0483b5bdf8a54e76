// vitest globalSetup: Debian's chromium for the real-browser tests (e2e/browser/).
//
// Runs `e2e/services/chromium.sh install` (apt-get, only when /usr/bin/chromium is missing),
// bounded, and hands the result to the tests through provide/inject:
//
//   import { inject } from 'vitest';
//   const chromium = inject('chromium');   // { executablePath } or { error }
//
// A failed install does not stop the other tests: the browser tests fail with its message.
// Nothing runs in the background, so there is nothing to tear down.
//
// Settings: CHROMIUM_BIN as in chromium.sh; CHROMIUM_SETUP_TIMEOUT (seconds, default 600).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

export type ProvidedChromium = Readonly<{ executablePath?: string; error?: string }>;

declare module 'vitest' {
  export interface ProvidedContext {
    /** The browser binary, or why there is none; undefined when this globalSetup is not configured. */
    chromium?: ProvidedChromium;
  }
}

const run = promisify(execFile);
const script = fileURLToPath(new URL('./chromium.sh', import.meta.url));

export default async function setup(project: TestProject): Promise<void> {
  const executablePath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
  const timeoutMs = Number(process.env.CHROMIUM_SETUP_TIMEOUT || 600) * 1000;
  try {
    await run(script, ['install'], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 });
    project.provide('chromium', { executablePath });
  } catch (error) {
    const e = error as { stderr?: string; killed?: boolean; message: string };
    const why = e.killed ? `timed out after ${Math.round(timeoutMs / 1000)} s` : e.message;
    project.provide('chromium', { error: `e2e/services/chromium.sh install failed (${why})\n${(e.stderr ?? '').slice(-4000)}` });
  }
}
