import type { ChildProcess } from 'node:child_process';

/** SIGKILLs every child still running, by PID, and forgets them all (exit and error paths). */
export function killChildren(children: Set<ChildProcess>): void {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}
