/**
 * Everything the benchmark spawns is killed by PID, whatever happens: normal end, an error,
 * a signal or the total timeout. Cleanups (the S3 bucket, temporary builds and storage) run
 * on every way out; the async ones are bounded so a hung S3 cannot keep the bench alive.
 */
import type { ChildProcess } from 'node:child_process';
import { killChildren } from '../support/kill-children.js';

const children = new Set<ChildProcess>();
const syncCleanups: Array<() => void> = [];
const asyncCleanups: Array<() => Promise<void>> = [];
let exiting = false;

export function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Runs on process exit, after the children are killed (synchronous: removing files). */
export function onExit(cleanup: () => void): void {
  syncCleanups.push(cleanup);
}

/** Runs before exiting on every path but `process.exit` itself (bounded to 150 s together). */
export function onShutdown(cleanup: () => Promise<void>): void {
  asyncCleanups.push(cleanup);
}

export function killAll(): void {
  killChildren(children);
}

/** Kills the servers, runs the async cleanups (bounded), then exits; a second call exits at once. */
export async function shutdown(code: number): Promise<never> {
  if (exiting) process.exit(code);
  exiting = true;
  killAll();
  const bound = new Promise<void>((resolve) => setTimeout(resolve, 150_000).unref());
  const all = Promise.all(
    asyncCleanups.map((cleanup) =>
      cleanup().catch((error: unknown) => {
        process.stderr.write(`cleanup failed: ${(error as Error).message}\n`);
      }),
    ),
  );
  await Promise.race([all, bound]);
  process.exit(code);
}

/** Installs the exit, signal, error and total-timeout handlers; returns a function that disarms the timeout. */
export function installProcessControl(totalTimeoutMs: number): () => void {
  process.on('exit', () => {
    killAll();
    for (const cleanup of syncCleanups) {
      try {
        cleanup();
      } catch {
        // best effort on the way out
      }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping servers\n`);
      void shutdown(130);
    });
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`bench failed: ${error.stack ?? String(error)}\n`);
    void shutdown(1);
  });
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`bench failed: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
    void shutdown(1);
  });
  const timer = setTimeout(() => {
    process.stderr.write(`total timeout of ${totalTimeoutMs / 1000} s reached\n`);
    void shutdown(1);
  }, totalTimeoutMs);
  return () => clearTimeout(timer);
}
