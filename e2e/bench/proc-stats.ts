/**
 * What the kernel says about a process and the machine: RSS and VmHWM from /proc/<pid>/status,
 * CPU from /proc/<pid>/stat (whole process and main thread), busy and interrupt time from
 * /proc/stat, and who else used the CPUs. The benchmark's noise control rests on these.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { sleep } from './units.js';

/** A run is disturbed when other processes used more than this share of one CPU during it. */
export const NOISY_SHARE = 0.2;

export type ProcStatus = { rssBytes: number; hwmBytes: number };

export function readStatus(pid: number): ProcStatus | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM') };
}

const CLK_TCK = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
  const n = Number(out.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** The command name and utime and stime (fields 2, 14 and 15) of a /proc stat file, in seconds. */
function readStat(file: string): { comm: string; user: number; sys: number } {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    // Fields after the "(comm)", which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
  } catch {
    return { comm: '', user: NaN, sys: NaN };
  }
}

export type CpuTimes = { user: number; sys: number; main: number };

/** CPU seconds of the whole process and of its main (JavaScript) thread. */
export function readCpu(pid: number): CpuTimes {
  const all = readStat(`/proc/${pid}/stat`);
  const main = readStat(`/proc/${pid}/task/${pid}/stat`);
  return { user: all.user, sys: all.sys, main: main.user + main.sys };
}

/** User + system CPU seconds of a set of processes (0 for one that is gone). */
export function cpuSeconds(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => {
    const { user, sys } = readStat(`/proc/${pid}/stat`);
    return Number.isNaN(user + sys) ? sum : sum + user + sys;
  }, 0);
}

/** Busy CPU seconds of the whole machine (all CPUs), from the first line of /proc/stat. */
export function readMachineCpu(): { busy: number; irq: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return {
    busy: ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLK_TCK,
    /** Interrupt and softirq time: during a run mostly its own loopback packets and disk completions. */
    irq: ((irq ?? 0) + (softirq ?? 0)) / CLK_TCK,
  };
}

export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

export type CpuSnapshot = Map<number, { comm: string; sec: number }>;

/** CPU seconds so far of every process on the machine, by PID, with its command name. */
export function cpuSnapshot(): CpuSnapshot {
  const out: CpuSnapshot = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const { comm, user, sys } = readStat(`/proc/${name}/stat`);
    if (!Number.isNaN(user + sys)) out.set(Number(name), { comm, sec: user + sys });
  }
  return out;
}

/**
 * Who else used the CPU between two snapshots, most first, without the PIDs in `exclude`:
 * "node 1.20 s, vitest 0.31 s, ended processes and kernel 2.10 s". Processes that ended in
 * between are only seen in the remainder of `totalSec`.
 */
export function otherCpuUsers(before: CpuSnapshot, after: CpuSnapshot, exclude: ReadonlySet<number>, totalSec: number, most = 4): string {
  const byComm = new Map<string, number>();
  for (const [pid, { comm, sec }] of after) {
    if (exclude.has(pid)) continue;
    const used = sec - (before.get(pid)?.sec ?? 0);
    if (used > 0) byComm.set(comm, (byComm.get(comm) ?? 0) + used);
  }
  const seen = [...byComm.values()].reduce((a, b) => a + b, 0);
  const top = [...byComm].sort((a, b) => b[1] - a[1]).slice(0, most);
  if (totalSec - seen >= 0.01) top.push(['ended processes and kernel', totalSec - seen]);
  return top.map(([comm, sec]) => `${comm} ${sec.toFixed(2)} s`).join(', ');
}

/**
 * Waits until the machine is quiet: less than NOISY_SHARE of one CPU used by anything but
 * this bench and `pids` over a second. Gives up after `maxWaitMs`; returns the last busy share.
 */
export async function waitForQuiet(pids: readonly number[], maxWaitMs: number): Promise<number> {
  const until = performance.now() + maxWaitMs;
  // One look of at least 200 ms even when told not to wait, so a busy machine is still reported.
  const lookMs = Math.max(200, Math.min(1000, maxWaitMs));
  for (;;) {
    const machine0 = readMachineCpu();
    const own0 = ownCpuSeconds();
    const srv0 = cpuSeconds(pids);
    await sleep(lookMs);
    const srv1 = cpuSeconds(pids);
    const machine1 = readMachineCpu();
    const busy = machine1.busy - machine0.busy - (machine1.irq - machine0.irq);
    const other = (busy - (ownCpuSeconds() - own0) - (srv1 - srv0)) / (lookMs / 1000);
    if (other < NOISY_SHARE || performance.now() >= until) return Math.max(0, other);
  }
}

/** VmRSS of one process every `intervalMs`: the peak, and the series (ms since start, bytes). */
export class RssSampler {
  peak = 0;
  readonly series: Array<[ms: number, bytes: number]> = [];
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    const status = readStatus(this.pid);
    if (!status || Number.isNaN(status.rssBytes)) return;
    this.series.push([Math.round(performance.now() - this.started), status.rssBytes]);
    if (status.rssBytes > this.peak) this.peak = status.rssBytes;
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }

  /** The highest RSS in each quarter of the sampled time: flat memory shows four equal numbers. */
  quarterPeaks(): number[] {
    const end = this.series.at(-1)?.[0] ?? 0;
    const peaks = [0, 0, 0, 0];
    for (const [ms, bytes] of this.series) {
      const q = Math.min(3, Math.floor((ms / Math.max(1, end)) * 4));
      peaks[q] = Math.max(peaks[q]!, bytes);
    }
    return peaks;
  }
}
