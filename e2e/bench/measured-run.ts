/**
 * One measured run: a fresh server process on a fresh, empty storage directory, one workload,
 * and everything that tells a real result from noise.
 *
 * Noise control, learned the hard way on a 2-vCPU VM: the window opens at least `settleMs`
 * after the previous run freed its memory (the VM hands freed memory back to the host after
 * ~1-2 s, and page cache on such memory costs ~2 s/GiB to fault in again), once other processes
 * leave the CPUs idle; a run in which other processes used more than NOISY_SHARE of a CPU is
 * marked noisy (main.ts re-runs it). Ceph's CPU during an S3 run is work, not noise, and so is
 * interrupt and softirq time (loopback traffic, disk completions): both are reported apart.
 * The server's RSS is sampled every 50 ms in the window; VmHWM is the fresh process's lifetime peak.
 */
import { spawnSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startServer, stopServer, type ServerSpec } from './bench-servers.js';
import type { CephS3 } from './ceph-s3.js';
import { DiskSampler } from './disk-sampler.js';
import {
  NOISY_SHARE,
  cpuSeconds,
  cpuSnapshot,
  otherCpuUsers,
  readCpu,
  readMachineCpu,
  readStatus,
  RssSampler,
  waitForQuiet,
  type CpuSnapshot,
  type CpuTimes,
} from './proc-stats.js';
import { GiB, MiB, round2, sleep, toMiB } from './units.js';
import type { Workload, WorkloadName } from './workload-types.js';

/** Where S3 servers buffer parts, relative to STORAGE_DIR (plain-tus-server.ts uses it too). */
export const S3_PARTS_DIR = '.s3-parts';

export type RunOptions = Readonly<{
  storageRoot: string;
  settleMs: number;
  quietWaitMs: number;
  runTimeoutMs: number;
  keep: boolean;
  cpuProfDir?: string;
  s3?: CephS3;
  s3PartSize: number;
}>;

export type Run = {
  round: number;
  server: string;
  role: ServerSpec['role'];
  storage: ServerSpec['storage'];
  workload: WorkloadName;
  /** The workload's figures plus vmHwmMiB, cpuMsPerOp, cpuSecPerGiB, lateRssGrowthMiB. */
  metrics: Record<string, number | null>;
  ops: number;
  windowMs: number;
  serverCpuSec: number;
  serverUserSec: number;
  serverSysSec: number;
  serverMainThreadSec: number;
  clientCpuSec: number;
  idleRssMiB: number;
  peakRssMiB: number;
  vmHwmMiB: number;
  /** Peak RSS in each quarter of the window (0: no sample in it): flat memory reads four near-equal numbers. */
  rssQuarterPeaksMiB: number[];
  /** [ms into the window, MiB], at most ~100 points. */
  rssSeries: Array<[number, number]>;
  peakStorageDirMiB: number;
  peakPartBuffersMiB: number | null;
  cephCpuSec: number | null;
  irqCpuSec: number;
  otherCpuSec: number;
  noisy: boolean;
  otherCpuUsers: string;
  detail: Record<string, unknown>;
};

export function syncDisk(): void {
  spawnSync('sync', [], { timeout: 120_000 });
}

/** When the previous run's server exited and its storage was deleted. */
let lastFreedAt = performance.now();

type Snapshot = { at: number; cpu: CpuTimes; client: NodeJS.CpuUsage; machine: { busy: number; irq: number }; everyone: CpuSnapshot; ceph: number };

export async function measure(spec: ServerSpec, workload: Workload, round: number, options: RunOptions): Promise<Run> {
  const label = `${spec.name.replace("'", 'p')}-${workload.name}-r${round}`;
  const storageDir = path.join(options.storageRoot, label);
  fs.rmSync(storageDir, { recursive: true, force: true });
  fs.mkdirSync(storageDir, { recursive: true });

  const s3Prefix = `${label}-${randomBytes(3).toString('hex')}/`;
  const storageEnv: Record<string, string> =
    spec.storage === 'file' ? { STORAGE: 'file' } : { ...options.s3!.env, STORAGE: 's3', S3_PART_SIZE: String(options.s3PartSize), S3_PREFIX: s3Prefix };
  const profileDir = options.cpuProfDir ? path.join(options.cpuProfDir, label) : undefined;
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });

  const abort = new AbortController();
  // Every request of the run listens to this one signal (64 and more at once).
  setMaxListeners(0, abort.signal);
  const deadline = setTimeout(() => abort.abort(new Error(`run exceeded --run-timeout of ${options.runTimeoutMs / 1000} s`)), options.runTimeoutMs);
  const server = await startServer(spec, storageDir, storageEnv, profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []);
  try {
    const cephPids = spec.storage === 's3' ? await options.s3!.daemonPids() : [];
    await sleep(Math.max(Math.min(1000, options.settleMs), options.settleMs - (performance.now() - lastFreedAt)));
    const busyBefore = await waitForQuiet([server.pid, ...cephPids], options.quietWaitMs);
    if (busyBefore >= NOISY_SHARE) process.stdout.write(`(machine still busy: ${(busyBefore * 100).toFixed(0)}% of a CPU) `);
    const idle = readStatus(server.pid);
    if (!idle) throw new Error(`server ${spec.name} vanished before the run`);

    const snap = (): Snapshot => ({
      at: performance.now(),
      cpu: readCpu(server.pid),
      client: process.cpuUsage(),
      machine: readMachineCpu(),
      everyone: cpuSnapshot(),
      ceph: cpuSeconds(cephPids),
    });
    let before: Snapshot | undefined;
    let after: Snapshot | undefined;
    let rss: RssSampler | undefined;
    let disk: DiskSampler | undefined;
    const meter = {
      begin() {
        rss = new RssSampler(server.pid);
        disk = new DiskSampler(storageDir, spec.storage === 's3' ? path.join(storageDir, S3_PARTS_DIR) : undefined);
        before = snap();
      },
      end() {
        after = snap();
        rss?.stop();
        disk?.stop();
      },
    };
    const storedSize = async (id: string) => {
      if (spec.storage === 's3') return options.s3!.objectSize(`${spec.s3Prefix ? s3Prefix : ''}${id}`);
      return fs.promises.stat(path.join(storageDir, id)).then((s) => s.size, () => undefined);
    };
    const died = new Promise<never>((_, reject) =>
      server.child.once('exit', (code, sig) => reject(new Error(`server ${spec.name} exited during the run (code ${code}, signal ${sig})`))),
    );
    const aborted = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason as Error), { once: true }));
    died.catch(() => undefined);
    aborted.catch(() => undefined);
    let outcome;
    try {
      outcome = await Promise.race([workload.run({ spec, server, storageDir, signal: abort.signal, meter, storedSize }), died, aborted]);
    } finally {
      rss?.stop();
      disk?.stop();
    }
    if (!before || !after || !rss || !disk) throw new Error(`workload ${workload.name} never opened and closed its window`);
    const end = readStatus(server.pid);
    if (!end) throw new Error(`server ${spec.name} vanished after the run`);
    await stopServer(server);

    const windowSec = (after.at - before.at) / 1000;
    const serverCpu = after.cpu.user + after.cpu.sys - before.cpu.user - before.cpu.sys;
    const clientCpuSec = (after.client.user - before.client.user + after.client.system - before.client.system) / 1e6;
    const irqCpu = after.machine.irq - before.machine.irq;
    const cephCpu = after.ceph - before.ceph;
    const machineBusy = after.machine.busy - before.machine.busy - irqCpu;
    const otherCpuSec = Math.max(0, machineBusy - serverCpu - clientCpuSec - cephCpu);
    const quarters = rss.quarterPeaks();
    const sampled = quarters.filter((q) => q > 0);
    const step = Math.max(1, Math.ceil(rss.series.length / 100));
    const vmHwmMiB = toMiB(end.hwmBytes);
    const metrics: Record<string, number | null> = {
      ...outcome.metrics,
      vmHwmMiB,
      ...(outcome.opsUnit === 'requests'
        ? { cpuMsPerOp: outcome.ops > 0 ? Math.round((serverCpu * 1e6) / outcome.ops) / 1000 : null }
        : { cpuSecPerGiB: outcome.ops > 0 ? round2(serverCpu / (outcome.ops / GiB)) : null }),
      lateRssGrowthMiB: sampled.length ? toMiB(Math.max(0, sampled.at(-1)! - sampled[0]!)) : null,
    };
    return {
      round,
      server: spec.name,
      role: spec.role,
      storage: spec.storage,
      workload: workload.name,
      metrics,
      ops: outcome.ops,
      windowMs: Math.round(windowSec * 1000),
      serverCpuSec: round2(serverCpu),
      serverUserSec: round2(after.cpu.user - before.cpu.user),
      serverSysSec: round2(after.cpu.sys - before.cpu.sys),
      serverMainThreadSec: round2(after.cpu.main - before.cpu.main),
      clientCpuSec: round2(clientCpuSec),
      idleRssMiB: toMiB(idle.rssBytes),
      peakRssMiB: toMiB(Math.max(rss.peak, end.rssBytes)),
      vmHwmMiB,
      rssQuarterPeaksMiB: quarters.map(toMiB),
      rssSeries: rss.series.filter((_, i) => i % step === 0).map(([ms, bytes]) => [ms, toMiB(bytes)]),
      peakStorageDirMiB: toMiB(disk.peakTotal),
      peakPartBuffersMiB: spec.storage === 's3' ? toMiB(disk.peakTemp) : null,
      cephCpuSec: spec.storage === 's3' ? round2(cephCpu) : null,
      irqCpuSec: round2(irqCpu),
      otherCpuSec: round2(otherCpuSec),
      noisy: otherCpuSec > NOISY_SHARE * windowSec,
      otherCpuUsers: otherCpuUsers(before.everyone, after.everyone, new Set([process.pid, server.pid, ...cephPids]), otherCpuSec),
      detail: outcome.detail ?? {},
    };
  } catch (error) {
    const tail = server.stderrTail();
    throw new Error(`${(error as Error).message}${tail ? `\n--- server ${spec.name} stderr ---\n${tail}` : ''}`, { cause: error });
  } finally {
    clearTimeout(deadline);
    await stopServer(server);
    if (!options.keep) fs.rmSync(storageDir, { recursive: true, force: true });
    // The next run must not pay for writing back this one's bytes (a small run leaves little).
    if (workload.diskBytes >= 64 * MiB) syncDisk();
    if (spec.storage === 's3') {
      const emptied = await options.s3!.empty();
      if (emptied.gcError) process.stdout.write(`(RGW garbage collection failed: ${emptied.gcError}) `);
    }
    lastFreedAt = performance.now();
  }
}
