import { startCommandArgs } from './start-command.js';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the server is started from here, as `npm start` would. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const LISTENING = /^listening on (http:\/\/\S+)\s*$/;
/** Output kept per process: enough for every log line a test makes, bounded all the same. */
const MAX_OUTPUT_CHARS = 4 * 1024 * 1024;

export type ExitInfo = Readonly<{ code: number | null; signal: NodeJS.Signals | null }>;

/** One parsed pino line from the server's stdout. */
export type LogLine = Readonly<Record<string, unknown> & { msg?: string }>;

export type StartOptions = Readonly<{
  /** Extra environment variables (they win over the defaults below). */
  env?: Readonly<Record<string, string>>;
  /** Reuse this storage directory (a restarted server); otherwise a temporary one is made and removed on stop. */
  storageDir?: string;
  /** How long to wait for the `listening on` line. */
  readyTimeoutMs?: number;
  /** Called synchronously the moment the `listening on` line arrives (before startServer resolves). */
  onReady?: (pid: number) => void;
}>;

export interface ServerProcess {
  /** `http://127.0.0.1:PORT`, from the server's own `listening on` line. */
  readonly url: string;
  /** The tus creation endpoint, `${url}/files/`. */
  readonly endpoint: string;
  readonly pid: number;
  readonly child: ChildProcess;
  readonly storageDir: string;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  readonly exitInfo: ExitInfo | undefined;
  stdout(): string;
  stderr(): string;
  /** stdout and stderr, for failure messages. */
  output(): string;
  /** The JSON log lines printed so far. */
  logs(): LogLine[];
  /** Waits (bounded) until a log line matches. */
  waitForLog(match: (line: LogLine) => boolean, description: string, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves with how it exited. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** Sends a signal to this process (by its PID). */
  kill(signal: NodeJS.Signals): void;
}

/** Every process started and not yet known to have exited, so nothing outlives the test worker. */
const live = new Map<number, ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a test run is torn down without its hooks: kill what we started, by PID.
  process.once('exit', () => {
    for (const pid of live.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** Resolves after `ms`, or rejects with a message naming what was awaited. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns a value other than undefined; bounded by `timeoutMs`. */
export async function pollUntil<T>(check: () => Promise<T | undefined> | T | undefined, description: string, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const maxAttempts = Math.ceil(timeoutMs / intervalMs) + 1;
  let lastError: unknown;
  for (let attempt = 0; attempt < maxAttempts && Date.now() <= deadline; attempt += 1) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${cause}`);
}

/** The environment the server sees: a clean one, so the developer's PORT or NODE_OPTIONS cannot leak in. */
function serverEnv(storageDir: string, extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'SYSTEMROOT']) {
    const value = process.env[key];
    if (value !== undefined) base[key] = value;
  }
  return { ...base, HOST: '127.0.0.1', PORT: '0', STORAGE_DIR: storageDir, LOG_LEVEL: 'info', ...extra };
}

type Spawned = {
  child: ChildProcess;
  pid: number;
  exited: Promise<ExitInfo>;
  exitInfo: () => ExitInfo | undefined;
  stdout: () => string;
  stderr: () => string;
  onStdoutLine: (listener: (line: string) => void) => () => void;
};

function spawnServer(env: NodeJS.ProcessEnv): Spawned {
  installExitHook();
  // What `npm start` runs, without npm in between (so the PID we hold is the server's own).
  const child = spawn(process.execPath, startCommandArgs(), { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('the server process could not be spawned');
  const pid = child.pid;
  live.set(pid, child);

  let out = '';
  let err = '';
  let partial = '';
  const lineListeners = new Set<(line: string) => void>();
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (text: string) => {
    if (out.length < MAX_OUTPUT_CHARS) out += text;
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) for (const listener of lineListeners) listener(line);
  });
  child.stderr?.on('data', (text: string) => {
    if (err.length < MAX_OUTPUT_CHARS) err += text;
  });

  let info: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      info = { code, signal };
      live.delete(pid);
      resolve(info);
    });
    child.once('error', () => {
      // spawn errors are followed by no 'exit' in some cases: settle anyway
      info ??= { code: null, signal: null };
      live.delete(pid);
      resolve(info);
    });
  });

  return {
    child,
    pid,
    exited,
    exitInfo: () => info,
    stdout: () => out,
    stderr: () => err,
    onStdoutLine(listener) {
      lineListeners.add(listener);
      return () => lineListeners.delete(listener);
    },
  };
}

function parseLogs(stdout: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      // a line cut by the output cap
    }
  }
  return lines;
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** A port that was free on 127.0.0.1 a moment ago, for a server that must come back on the same address. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** Makes a temporary directory under os.tmpdir(). */
export function makeTempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/**
 * Starts the real server (`npm start`'s command, `node <flags> server/dist/main.js`, rebuilt
 * first when server/src changed) on 127.0.0.1 with PORT=0 and waits, bounded, for its
 * `listening on` line. The temporary storage directory it made (if it made one) is removed by
 * stop().
 */
export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  const ownsStorage = options.storageDir === undefined;
  const storageDir = options.storageDir ?? (await makeTempDir('tus-e2e-storage-'));
  const spawned = spawnServer(serverEnv(storageDir, options.env ?? {}));
  const { child, pid, exited } = spawned;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;

  const removeStorage = async () => {
    if (ownsStorage) await fs.rm(storageDir, { recursive: true, force: true });
  };

  let url: string;
  try {
    url = await withTimeout(
      new Promise<string>((resolve, reject) => {
        const seen = parseListening(spawned.stdout());
        if (seen) return resolve(seen);
        const unsubscribe = spawned.onStdoutLine((line) => {
          const match = LISTENING.exec(line);
          if (match?.[1]) {
            unsubscribe();
            options.onReady?.(pid);
            resolve(match[1]);
          }
        });
        void exited.then((info) => {
          unsubscribe();
          reject(new Error(`the server exited (code ${info.code}, signal ${info.signal}) before listening:\n${spawned.stderr()}${spawned.stdout()}`));
        });
      }),
      readyTimeoutMs,
      'the server to print "listening on"',
    );
  } catch (error) {
    signalPid(pid, 'SIGKILL');
    await withTimeout(exited, 5_000, 'the failed server to exit').catch(() => undefined);
    await removeStorage();
    throw error;
  }
  if (!url.startsWith('http://127.0.0.1:')) {
    signalPid(pid, 'SIGKILL');
    throw new Error(`the server listens on ${url}, expected 127.0.0.1`);
  }

  let stopping: Promise<ExitInfo> | undefined;
  const server: ServerProcess = {
    url,
    endpoint: `${url}/files/`,
    pid,
    child,
    storageDir,
    exited,
    get exitInfo() {
      return spawned.exitInfo();
    },
    stdout: spawned.stdout,
    stderr: spawned.stderr,
    output: () => `--- stdout ---\n${spawned.stdout()}\n--- stderr ---\n${spawned.stderr()}`,
    logs: () => parseLogs(spawned.stdout()),
    async waitForLog(match, description, timeoutMs = 10_000) {
      return pollUntil(() => parseLogs(spawned.stdout()).find(match), `log line: ${description}`, timeoutMs, 25);
    },
    kill(signal) {
      signalPid(pid, signal);
    },
    stop(graceMs = 10_000) {
      stopping ??= (async () => {
        if (!spawned.exitInfo()) {
          signalPid(pid, 'SIGTERM');
          const graceful = await withTimeout(exited, graceMs, `server ${pid} to stop`).catch(() => undefined);
          if (!graceful) {
            signalPid(pid, 'SIGKILL');
            await withTimeout(exited, 5_000, `server ${pid} to die`).catch(() => undefined);
          }
        }
        await removeStorage();
        return spawned.exitInfo() ?? { code: null, signal: null };
      })();
      return stopping;
    },
  };
  return server;
}

function parseListening(stdout: string): string | undefined {
  for (const line of stdout.split('\n')) {
    const match = LISTENING.exec(line);
    if (match?.[1]) return match[1];
  }
  return undefined;
}

/** Runs the server expecting it to refuse to start: resolves with its exit and output (bounded). */
export async function runServerToExit(env: Readonly<Record<string, string>>, timeoutMs = 30_000): Promise<ExitInfo & { stdout: string; stderr: string }> {
  const storageDir = env.STORAGE_DIR === undefined ? await makeTempDir('tus-e2e-storage-') : undefined;
  const spawned = spawnServer(serverEnv(storageDir ?? '', env));
  try {
    const info = await withTimeout(spawned.exited, timeoutMs, 'the server to exit');
    return { ...info, stdout: spawned.stdout(), stderr: spawned.stderr() };
  } finally {
    if (!spawned.exitInfo()) {
      signalPid(spawned.pid, 'SIGKILL');
      await withTimeout(spawned.exited, 5_000, 'the server to die').catch(() => undefined);
    }
    if (storageDir) await fs.rm(storageDir, { recursive: true, force: true });
  }
}

/**
 * Cleanup for a test or a test file: servers and directories registered here are stopped
 * and removed by dispose(), newest first, even when the test failed.
 */
export class Scope {
  private readonly tasks: (() => Promise<unknown>)[] = [];

  async server(options: StartOptions = {}): Promise<ServerProcess> {
    const server = await startServer(options);
    this.defer(() => server.stop());
    return server;
  }

  async tempDir(prefix = 'tus-e2e-'): Promise<string> {
    const dir = await makeTempDir(prefix);
    this.defer(() => fs.rm(dir, { recursive: true, force: true }));
    return dir;
  }

  defer(task: () => Promise<unknown> | unknown): void {
    this.tasks.push(async () => task());
  }

  async dispose(): Promise<void> {
    const errors: unknown[] = [];
    while (this.tasks.length > 0) {
      const task = this.tasks.pop();
      try {
        await task?.();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  }
}

/** Bytes a server received for one upload: the sum of `bytesIn` over its request log lines (POST and PATCH). */
export function bytesReceived(server: ServerProcess, uploadId: string): number {
  return server
    .logs()
    .filter((line) => line.msg === 'request' && line.uploadId === uploadId)
    .reduce((sum, line) => sum + (typeof line.bytesIn === 'number' ? line.bytesIn : 0), 0);
}
