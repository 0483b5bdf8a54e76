// vitest globalSetup: Debian's ffmpeg (ffprobe and ffmpeg) for the media and poster processors'
// tests (e2e/media.test.ts, server/src/media/).
//
// Runs `e2e/services/ffmpeg.sh install` (apt-get, only when ffprobe or ffmpeg is missing),
// bounded, and hands the result to the tests through provide/inject:
//
//   import { inject } from 'vitest';
//   const ffmpeg = inject('ffmpeg');   // { version } or { error }
//
// A failed install does not stop the other tests: the media tests fail with its message.
// Nothing runs in the background, so there is nothing to tear down.
//
// Settings: FFMPEG_SETUP_TIMEOUT (seconds, default 600).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

export type ProvidedFfmpeg = Readonly<{ version?: string; error?: string }>;

declare module 'vitest' {
  export interface ProvidedContext {
    /** ffmpeg's version line, or why it is not installed; undefined when this globalSetup is not configured. */
    ffmpeg?: ProvidedFfmpeg;
  }
}

const run = promisify(execFile);
const script = fileURLToPath(new URL('./ffmpeg.sh', import.meta.url));

export default async function setup(project: TestProject): Promise<void> {
  const timeoutMs = Number(process.env.FFMPEG_SETUP_TIMEOUT || 600) * 1000;
  try {
    await run(script, ['install'], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 });
    const { stdout } = await run(script, ['check'], { timeout: 30_000, killSignal: 'SIGKILL' });
    project.provide('ffmpeg', { version: stdout.split('\n')[1] ?? stdout });
  } catch (error) {
    const e = error as { stderr?: string; killed?: boolean; message: string };
    const why = e.killed ? `timed out after ${Math.round(timeoutMs / 1000)} s` : e.message;
    project.provide('ffmpeg', { error: `e2e/services/ffmpeg.sh install failed (${why})\n${(e.stderr ?? '').slice(-4000)}` });
  }
}
