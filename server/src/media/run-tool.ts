import { spawn } from 'node:child_process';
import { findTool, TOOL_ENV } from './media-tools.js';

export type ToolRun = Readonly<{
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Killed by the time limit. */
  timedOut: boolean;
  /** stdout, at most `maxStdout` bytes: more ends the run (`overflow`). */
  stdout: Buffer;
  overflow: boolean;
  /** The end of stderr (its last 4 KiB): ffmpeg's reason for a failure. */
  stderr: string;
  ms: number;
}>;

export type ToolLimits = Readonly<{
  timeoutMs: number;
  /** prlimit --as, bytes; 0 for none. */
  memoryBytes: number;
  /** stdout kept; a run printing more is killed. */
  maxStdout: number;
}>;

const STDERR_KEPT = 4096;

/** The last line of ffmpeg's stderr that says something, for a reason. */
export function lastLine(stderr: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter(Boolean);
  return (lines.at(-1) ?? '').slice(0, 300);
}

/**
 * Runs a tool as a child process in its own process group, with a time limit (the group is
 * SIGKILLed when it runs out: ffmpeg's threads and any child go with it), an address-space
 * limit through util-linux's prlimit when it is installed, no stdin, a fixed environment,
 * and a cap on what it prints. It never throws for what the tool does (exit codes, signals,
 * timeouts are in the answer); it rejects only when the tool cannot be started.
 */
export function runTool(command: string, args: readonly string[], limits: ToolLimits): Promise<ToolRun> {
  const executable = findTool(command);
  if (!executable) return Promise.reject(new Error(`${command} is not installed (looked for it in the tools' PATH)`));
  const prlimit = limits.memoryBytes > 0 ? findTool('prlimit') : undefined;
  const [file, argv] = prlimit ? [prlimit, [`--as=${limits.memoryBytes}`, '--', executable, ...args]] : [executable, [...args]];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...TOOL_ENV } });
    const out: Buffer[] = [];
    let outBytes = 0;
    let overflow = false;
    let stderr = '';
    let timedOut = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, limits.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      if (overflow) return;
      outBytes += chunk.byteLength;
      if (outBytes > limits.maxStdout) {
        overflow = true;
        killGroup();
        return;
      }
      out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT);
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the tool left behind in its group (it should be nothing) goes too.
      killGroup();
      resolve({ code, signal, timedOut, stdout: Buffer.concat(out), overflow, stderr, ms: Date.now() - started });
    });
  });
}
