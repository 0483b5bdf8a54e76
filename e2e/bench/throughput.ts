/**
 * Single-stream upload throughput and memory: this server (A) against a plain @tus/server on
 * node:http (B, e2e/bench/plain-tus-server.ts), each with file storage and/or with S3 (the
 * local Ceph RADOS Gateway of e2e/services/ceph-rgw.sh), interleaved in one run.
 * `npm run bench -- --help` lists the options.
 *
 *   npm run bench                                   # A-file vs B-file: 1 GiB, both cases, 3 rounds
 *   npm run bench -- --size 1GiB,256MiB --gc-trace --out /tmp/bench.json
 *   npm run bench -- --extra 'A-noheap=server/dist/main.js'
 *   npm run bench -- --servers A-s3,A-file,B-s3 --total-timeout 3600 --out /tmp/s3-bench.json
 *                                                   # S3 vs file, and A vs a plain @tus/s3-store, on Ceph
 *
 * Servers (--servers): A-file and A-s3 are this server (STORAGE=file / s3), B-file and B-s3 the
 * plain @tus/server with @tus/file-store / @tus/s3-store (upstream defaults but the part size).
 * Each is compared with the B of its storage kind. S3 servers get the same S3_PART_SIZE, a bench
 * bucket of their own (emptied after every run, deleted at the end; A also gets a fresh
 * S3_PREFIX per run), and buffer parts in STORAGE_DIR/.s3-parts, whose peak size is reported.
 * Ceph is started when it is not running, and then stopped at the end.
 *
 * Cases, for every size:
 *   single   the whole upload in ONE PATCH (Content-Length = size)
 *   chunked  the same bytes in sequential PATCHes of --chunk bytes over one keep-alive socket
 *
 * Every measured run gets a fresh server process and a fresh, empty storage directory on the
 * same (real, not tmpfs) disk; the upload is deleted and the disk synced after the run.
 * Throughput is measured from the moment the first PATCH is issued to the arrival of the final
 * 204 (the POST that creates the upload is not counted), and the stored size is checked (the
 * file's, or the S3 object's ContentLength). The disk used by the storage directory (and by
 * its part buffers) is sampled every 50 ms.
 * The server's RSS is read from /proc/<pid>/status: once at idle before the upload, every
 * 50 ms during it, and VmHWM (the lifetime peak of that fresh process) at the end. Server CPU
 * (whole process and main thread) comes from /proc/<pid>/stat.
 *
 * Noise control, learned the hard way on a 2-vCPU VM: every upload starts at least --settle
 * seconds after the previous run freed its memory (the VM hands freed memory back to the host
 * after ~1-2 s, and page cache on such memory costs ~2 s/GiB to fault in again), waits for
 * other processes to leave the CPUs idle, and is re-run when other processes still used
 * more than 20 % of a CPU during it (when every attempt was, the least disturbed one is kept).
 * During an S3 run the Ceph daemons' CPU is work, not noise: it is reported apart (before a run,
 * Ceph must be idle like everything else). Interrupt and softirq time (the loopback traffic,
 * three hops with S3, and disk completions) is counted apart too, never as noise.
 *
 * The client is a raw node:http client streaming one pre-generated 8 MiB random buffer
 * again and again with backpressure, so it costs the same for every server and never holds
 * the file. Every spawned process is killed by PID on exit, on errors and on timeouts.
 */
import { startEntry, startNodeFlags } from '../support/start-command.js';
import { killChildren } from '../support/kill-children.js';
import { openCephS3, type CephS3 } from './ceph-s3.js';
import { DiskSampler, diskUsage } from './disk-sampler.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const BUFFER_SIZE = 8 * MiB;
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ---------------------------------------------------------------------------------------------
// Options

type CaseKind = 'single' | 'chunked';
type StorageKind = 'file' | 's3';
type ServerSpec = Readonly<{
  name: string;
  entry: string;
  nodeArgs: readonly string[];
  storage: StorageKind;
  /** Whether it puts its objects under S3_PREFIX (the plain @tus/s3-store has no prefix). */
  s3Prefix: boolean;
}>;
/** Where S3 servers buffer parts, relative to STORAGE_DIR (plain-tus-server.ts uses it too). */
const S3_PARTS_DIR = '.s3-parts';

const USAGE = `usage: npm run bench -- [options]
  --servers LIST       servers, interleaved in this order (default A-file,B-file); any of
                       A-file, A-s3 (this server), B-file, B-s3 (plain @tus/server + @tus/file-store / @tus/s3-store).
                       S3 comparison on Ceph: --servers A-s3,A-file,B-s3 --total-timeout 3600
  --s3-part-size SIZE  S3_PART_SIZE of the S3 servers (default 8MiB)
  --size LIST          upload sizes, comma separated (default 1GiB); e.g. 1GiB,256MiB
  --rounds N           interleaved rounds (default 3)
  --chunk SIZE         PATCH size for the chunked case (default 8MiB)
  --cases LIST         single,chunked (default both)
  --out FILE           also write the results as JSON to FILE
  --storage-dir DIR    parent for the per-run storage directories (default: OS temp dir); must be a real disk
  --run-timeout SEC    limit for one measured run, server start to 204 (default 300)
  --settle SEC         minimum time between freeing the previous run's data and the next upload (default 5)
  --quiet-wait SEC     before each run, wait up to SEC for other processes to leave the CPUs idle (default 60)
  --retries N          re-run a run disturbed by other processes' CPU use up to N times, then keep the least
                       disturbed attempt (default 2)
  --total-timeout SEC  limit for the whole benchmark (default 1500)
  --extra 'NAME=ENTRY [NODE_FLAG...]'
                       also measure another server started like A (same env), e.g. a patched copy of
                       server/src or A with extra node flags; a NAME ending in -s3 runs on S3 like A-s3;
                       compared against the B of its storage (repeatable)
  --cpu-prof DIR       start every server with --cpu-prof, profiles in DIR/<server>-<case>-r<round>
  --gc-trace           start servers with --trace-gc and count their scavenges and mark-compacts per run
  --keep               keep the storage directories (default: deleted)
  --allow-tmpfs        allow a tmpfs/ramfs storage directory
  --help`;

function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|kb|mb|gb|k|m|g)?\s*$/i.exec(text);
  if (!match) throw new Error(`not a size: "${text}" (expected e.g. 1GiB, 256MiB, 8388608)`);
  const units: Record<string, number> = { b: 1, k: 1024, kib: 1024, m: MiB, mib: MiB, g: GiB, gib: GiB, kb: 1e3, mb: 1e6, gb: 1e9 };
  const bytes = Math.round(Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`size out of range: "${text}"`);
  return bytes;
}

const formatMiB = (bytes: number) => `${Math.round(bytes / MiB)} MiB`;

function formatSize(bytes: number): string {
  if (bytes % GiB === 0) return `${bytes / GiB}GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB}MiB`;
  return `${bytes}B`;
}

function positiveInt(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} expects a positive integer, got "${text}"`);
  return n;
}

const { values: args } = parseArgs({
  options: {
    servers: { type: 'string', default: 'A-file,B-file' },
    's3-part-size': { type: 'string', default: '8MiB' },
    size: { type: 'string', default: '1GiB' },
    rounds: { type: 'string', default: '3' },
    chunk: { type: 'string', default: '8MiB' },
    cases: { type: 'string', default: 'single,chunked' },
    out: { type: 'string' },
    'storage-dir': { type: 'string' },
    'run-timeout': { type: 'string', default: '300' },
    'total-timeout': { type: 'string', default: '1500' },
    settle: { type: 'string', default: '5' },
    'quiet-wait': { type: 'string', default: '60' },
    retries: { type: 'string', default: '2' },
    extra: { type: 'string', multiple: true, default: [] },
    'cpu-prof': { type: 'string' },
    keep: { type: 'boolean', default: false },
    'gc-trace': { type: 'boolean', default: false },
    'allow-tmpfs': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const sizes = args.size.split(',').map(parseSize);
const rounds = positiveInt(args.rounds, 'rounds');
const chunkSize = parseSize(args.chunk);
const cases = args.cases.split(',').map((c) => c.trim()) as CaseKind[];
for (const c of cases) if (c !== 'single' && c !== 'chunked') throw new Error(`unknown case "${c}" (single, chunked)`);
const runTimeoutMs = positiveInt(args['run-timeout'], 'run-timeout') * 1000;
const totalTimeoutMs = positiveInt(args['total-timeout'], 'total-timeout') * 1000;
const cpuProfDir = args['cpu-prof'] ? path.resolve(args['cpu-prof']) : undefined;
const settleMs = Number(args.settle) * 1000;
if (!Number.isFinite(settleMs) || settleMs < 0) throw new Error(`--settle expects seconds, got "${args.settle}"`);
const quietWaitMs = Number(args['quiet-wait']) * 1000;
if (!Number.isFinite(quietWaitMs) || quietWaitMs < 0) throw new Error(`--quiet-wait expects seconds, got "${args['quiet-wait']}"`);
const retries = Number(args.retries);
if (!Number.isInteger(retries) || retries < 0) throw new Error(`--retries expects a count, got "${args.retries}"`);
/** A run is disturbed when other processes used more than this share of one CPU during it. */
const NOISY_SHARE = 0.2;

const s3PartSize = parseSize(args['s3-part-size']);
const storageOf = (name: string): StorageKind => (name.endsWith('-s3') ? 's3' : 'file');
const ourServer = (name: string, entry: string, nodeArgs: readonly string[]): ServerSpec => ({
  name,
  entry: path.resolve(REPO_ROOT, entry),
  nodeArgs,
  storage: storageOf(name),
  s3Prefix: true,
});
const plainServer = (name: string): ServerSpec => ({
  name,
  entry: path.join(REPO_ROOT, 'e2e/bench/plain-tus-server.ts'),
  nodeArgs: [],
  storage: storageOf(name),
  s3Prefix: false,
});
/** The servers --servers picks from. A runs with the flags of `npm start` (a V8 heap setting that avoids needless full GCs). */
const CATALOGUE: readonly ServerSpec[] = [
  ourServer('A-file', startEntry(), startNodeFlags()),
  ourServer('A-s3', startEntry(), startNodeFlags()),
  plainServer('B-file'),
  plainServer('B-s3'),
];
/** The baseline a server is compared with: the plain server on the same storage. */
const baselineOf = (storage: StorageKind) => `B-${storage}`;

const servers: ServerSpec[] = [
  ...args.servers.split(',').map((name) => {
    const spec = CATALOGUE.find((s) => s.name === name.trim());
    if (!spec) throw new Error(`--servers: unknown server "${name}" (${CATALOGUE.map((s) => s.name).join(', ')})`);
    return spec;
  }),
  ...args.extra.map((spec): ServerSpec => {
    const eq = spec.indexOf('=');
    const [entry, ...nodeArgs] = spec.slice(eq + 1).trim().split(/\s+/);
    if (eq <= 0 || !entry) throw new Error(`--extra expects 'NAME=ENTRY [NODE_FLAG...]', got "${spec}"`);
    if (CATALOGUE.some((s) => s.name === spec.slice(0, eq))) throw new Error(`--extra: the names ${CATALOGUE.map((s) => s.name).join(', ')} are taken`);
    return ourServer(spec.slice(0, eq), entry, nodeArgs);
  }),
];
if (new Set(servers.map((s) => s.name)).size !== servers.length) throw new Error('--servers: a server is named twice');
for (const s of servers) if (!fs.existsSync(s.entry)) throw new Error(`server entry not found: ${s.entry}`);

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: everything we spawn is killed by PID, whatever happens; the S3 bucket
// is deleted (and Ceph stopped, if we started it) on every way out but `process.exit` itself.

const children = new Set<ChildProcess>();
let storageRoot: string | undefined;
let createdStorageRoot = false;
let s3: CephS3 | undefined;

function killAll(): void {
  killChildren(children);
}

function removeStorageRoot(): void {
  if (storageRoot && createdStorageRoot && !args.keep) fs.rmSync(storageRoot, { recursive: true, force: true });
}

let exiting = false;
/** Kills the servers, deletes the bucket (bounded), then exits; a second call exits at once. */
async function shutdown(code: number): Promise<never> {
  if (exiting) process.exit(code);
  exiting = true;
  killAll();
  if (s3) {
    const bound = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out after 150 s')), 150_000).unref());
    await Promise.race([s3.close(), bound]).catch((error: unknown) => {
      process.stderr.write(`S3 cleanup failed (bucket ${s3!.bucket}${s3!.startedHere ? ', Ceph started by this bench' : ''}): ${(error as Error).message}\n`);
    });
  }
  process.exit(code);
}

process.on('exit', () => {
  killAll();
  removeStorageRoot();
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping servers${s3 ? ' and cleaning up S3' : ''}\n`);
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
const totalTimer = setTimeout(() => {
  process.stderr.write(`total timeout of ${totalTimeoutMs / 1000} s reached\n`);
  void shutdown(1);
}, totalTimeoutMs);

// ---------------------------------------------------------------------------------------------
// /proc readers

type ProcStatus = { rssBytes: number; hwmBytes: number };

function readStatus(pid: number): ProcStatus | undefined {
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

type CpuTimes = { user: number; sys: number; mainUser: number; mainSys: number };

/** The command name and utime and stime (fields 2, 14 and 15) of a /proc stat file, times in seconds. */
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

function readStatTimes(file: string): [number, number] {
  const { user, sys } = readStat(file);
  return [user, sys];
}

type CpuSnapshot = Map<number, { comm: string; sec: number }>;

/** CPU seconds so far of every process on the machine, by PID, with its command name. */
function cpuSnapshot(): CpuSnapshot {
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
 * between (a test suite's short-lived servers) are only seen in the remainder of `totalSec`.
 */
function otherCpuUsers(before: CpuSnapshot, after: CpuSnapshot, exclude: ReadonlySet<number>, totalSec: number, most = 4): string {
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

/** User + system CPU seconds of a set of processes (0 for one that is gone). */
function cpuSeconds(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => {
    const [user, sys] = readStatTimes(`/proc/${pid}/stat`);
    return Number.isNaN(user + sys) ? sum : sum + user + sys;
  }, 0);
}

/** CPU seconds of the whole process and of its main (JavaScript) thread. */
function readCpu(pid: number): CpuTimes {
  const [user, sys] = readStatTimes(`/proc/${pid}/stat`);
  const [mainUser, mainSys] = readStatTimes(`/proc/${pid}/task/${pid}/stat`);
  return { user, sys, mainUser, mainSys };
}

/** Busy CPU seconds of the whole machine (all CPUs), from the first line of /proc/stat. */
function readMachineCpu(): { busy: number; irq: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return {
    busy: ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / CLK_TCK,
    /** Interrupt and softirq time: during a run mostly its own loopback packets and disk completions. */
    irq: ((irq ?? 0) + (softirq ?? 0)) / CLK_TCK,
  };
}

function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/**
 * Waits until the machine is quiet: less than NOISY_SHARE of one CPU used by anything but
 * this bench and `pid` over one second. Gives up after `maxWaitMs`; returns the last busy share.
 */
async function waitForQuiet(pid: number, maxWaitMs: number): Promise<number> {
  const until = performance.now() + maxWaitMs;
  for (;;) {
    const machine0 = readMachineCpu();
    const own0 = ownCpuSeconds();
    const srv0 = readCpu(pid);
    await sleep(1000);
    const srv1 = readCpu(pid);
    const machine1 = readMachineCpu();
    const busy = machine1.busy - machine0.busy - (machine1.irq - machine0.irq);
    const other = busy - (ownCpuSeconds() - own0) - (srv1.user + srv1.sys - srv0.user - srv0.sys);
    if (other < NOISY_SHARE || performance.now() >= until) return Math.max(0, other);
  }
}

class RssSampler {
  peak = 0;
  samples = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number, intervalMs = 50) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    const status = readStatus(this.pid);
    if (!status) return;
    this.samples++;
    if (status.rssBytes > this.peak) this.peak = status.rssBytes;
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Disk

type DiskInfo = { storageRoot: string; device: string; mountPoint: string; fsType: string; df: string };

function diskInfo(dir: string): DiskInfo {
  const real = fs.realpathSync(dir);
  let best = { device: '?', mountPoint: '/', fsType: '?' };
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [device, mountPoint, fsType] = line.split(' ');
    if (!device || !mountPoint || !fsType) continue;
    const inside = real === mountPoint || real.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
    if (inside && mountPoint.length >= best.mountPoint.length) best = { device, mountPoint, fsType };
  }
  const df = spawnSync('df', ['-hT', real], { encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  return { storageRoot: real, ...best, df };
}

function syncDisk(): void {
  spawnSync('sync', [], { timeout: 120_000 });
}

// ---------------------------------------------------------------------------------------------
// Servers

/** One --trace-gc line: milliseconds since the server's isolate started, and the kind. */
type GcEvent = { ms: number; kind: 'scavenge' | 'mark-compact' };
type RunningServer = { child: ChildProcess; pid: number; url: string; stderrTail: () => string; spawnedAt: number; gc: GcEvent[] };

/** STORAGE and S3_* for a server; S3_PREFIX is fresh for every run. */
function storageEnv(spec: ServerSpec, s3Prefix: string): Record<string, string> {
  if (spec.storage === 'file') return { STORAGE: 'file' };
  return { ...s3!.env, STORAGE: 's3', S3_PART_SIZE: String(s3PartSize), S3_PREFIX: s3Prefix };
}

function startServer(spec: ServerSpec, storageDir: string, size: number, s3Prefix: string, profileDir?: string): Promise<RunningServer> {
  const nodeArgs = [
    ...spec.nodeArgs,
    ...(args['gc-trace'] ? ['--trace-gc'] : []),
    ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
  ];
  // Storage settings come from the spec alone, never from the bench's own environment.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'STORAGE' && !name.startsWith('S3_')));
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    ...storageEnv(spec, s3Prefix),
    HOST: '127.0.0.1',
    PORT: '0',
    STORAGE_DIR: storageDir,
    LOG_LEVEL: 'warn',
    MAX_UPLOAD_SIZE: String(Math.max(size, 2 * GiB)),
    SHUTDOWN_TIMEOUT: '5s',
  };
  // Servers get exactly the flags above, not whatever loader the bench itself runs under.
  delete env.NODE_OPTIONS;
  const spawnedAt = performance.now();
  // Compiled JavaScript (A, as npm start runs it) needs no loader; a .ts entry gets tsx.
  const child = spawn(process.execPath, [...nodeArgs, ...(spec.entry.endsWith('.ts') ? ['--import', 'tsx'] : []), spec.entry], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  const stderrTail = () => stderr.trim();

  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`server ${spec.name} did not start within 30 s`)), 30_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
      reject(new Error(`${error.message}${stderrTail() ? `\n--- server stderr ---\n${stderrTail()}` : ''}`));
    };
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`server ${spec.name} exited during startup (code ${code}, signal ${signal})`)));
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.removeListener('error', fail);
      child.stdout!.removeAllListeners('data');
      // With --gc-trace the server's stdout carries one line per GC (flushed late: stdout is a
      // pipe), stamped with the time since the isolate started.
      const gc: GcEvent[] = [];
      let partial = stdout.slice(match.index + match[0].length);
      const parse = (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const event = /\s(\d+) ms: (Scavenge|Mark-Compact) /.exec(line);
          if (event) gc.push({ ms: Number(event[1]), kind: event[2] === 'Scavenge' ? 'scavenge' : 'mark-compact' });
        }
      };
      child.stdout!.on('data', parse);
      child.once('exit', () => children.delete(child));
      resolve({ child, pid: child.pid!, url: match[1]!, stderrTail, spawnedAt, gc });
    });
  });
}

/** SIGTERM (lets --cpu-prof write its profile), SIGKILL if it lingers. */
async function stopServer(server: RunningServer): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    if (child.stdout && !child.stdout.readableEnded) await new Promise((done) => child.stdout!.once('close', done));
    return;
  }
  // 'close' comes after 'exit' once stdout is drained (the --trace-gc lines).
  const exited = new Promise<void>((done) => child.once('close', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

// ---------------------------------------------------------------------------------------------
// Client: raw node:http, one keep-alive socket, body streamed from one 8 MiB buffer.

const payload = randomBytes(BUFFER_SIZE);

type Reply = { status: number; headers: http.IncomingHttpHeaders; body: string };

function request(
  agent: http.Agent,
  url: string,
  method: string,
  headers: Record<string, string>,
  bodyLength: number,
  signal: AbortSignal,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { ...headers, 'Content-Length': String(bodyLength) }, signal });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        if (body.length < 4000) body += text;
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    writeBody(req, bodyLength).catch((error: unknown) => {
      req.destroy(error as Error);
      reject(error as Error);
    });
  });
}

/** Writes `length` bytes of the shared buffer, waiting for 'drain' whenever write() says so. */
async function writeBody(req: http.ClientRequest, length: number): Promise<void> {
  let left = length;
  while (left > 0) {
    const n = Math.min(left, payload.length);
    left -= n;
    if (!req.write(n === payload.length ? payload : payload.subarray(0, n))) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          req.off('drain', done);
          req.off('error', onError);
          req.off('close', onClose);
          resolve();
        };
        const onError = (error: Error) => {
          req.off('drain', done);
          req.off('close', onClose);
          reject(error);
        };
        const onClose = () => {
          req.off('drain', done);
          req.off('error', onError);
          reject(new Error('connection closed while sending the body'));
        };
        req.on('drain', done);
        req.once('error', onError);
        req.once('close', onClose);
      });
    }
  }
  req.end();
}

type UploadResult = { elapsedMs: number; patches: number; uploadId: string };

async function upload(url: string, size: number, patchSize: number, signal: AbortSignal): Promise<UploadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const created = await request(agent, `${url}/files`, 'POST', { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(size) }, 0, signal);
    const location = created.headers.location;
    if (created.status !== 201 || !location) throw new Error(`POST answered ${created.status}: ${created.body}`);
    const uploadUrl = new URL(location, url).href;
    const uploadId = new URL(uploadUrl).pathname.split('/').pop()!;

    let offset = 0;
    let patches = 0;
    const started = performance.now();
    while (offset < size) {
      const length = Math.min(patchSize, size - offset);
      const reply = await request(
        agent,
        uploadUrl,
        'PATCH',
        { 'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
        length,
        signal,
      );
      patches++;
      const newOffset = Number(reply.headers['upload-offset']);
      if (reply.status !== 204 || newOffset !== offset + length) {
        throw new Error(`PATCH at ${offset} answered ${reply.status}, Upload-Offset ${reply.headers['upload-offset']}: ${reply.body}`);
      }
      offset = newOffset;
    }
    return { elapsedMs: performance.now() - started, patches, uploadId };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// One measured run

type Run = {
  round: number;
  server: string;
  storage: StorageKind;
  case: CaseKind;
  sizeBytes: number;
  patchBytes: number;
  patches: number;
  elapsedMs: number;
  mibPerSec: number;
  idleRssMiB: number;
  peakRssMiB: number;
  vmHwmMiB: number;
  rssGrowthMiB: number;
  rssSamples: number;
  /** Peak disk used by the server's storage directory during the upload (the upload itself, with file storage). */
  peakStorageDirMiB: number;
  /** Peak disk used by the S3 part buffers (STORAGE_DIR/.s3-parts); null with file storage. */
  peakPartBuffersMiB: number | null;
  /** CPU seconds of the Ceph daemons (mon, osd, rgw) during the upload; null with file storage. */
  cephCpuSec: number | null;
  /** Interrupt and softirq CPU seconds of the machine during the upload (loopback network, disk); not noise. */
  irqCpuSec: number;
  /** CPU seconds used by other processes on the machine during the upload; a run is noisy above NOISY_SHARE. */
  otherCpuSec: number;
  noisy: boolean;
  /** The other processes that used the most CPU during the upload, e.g. "node 1.20 s, ceph-osd 0.31 s". */
  otherCpuUsers: string;
  /** GCs of the server during the upload, with --gc-trace. */
  gcScavenges: number | null;
  gcMarkCompacts: number | null;
  /** Server CPU during the upload: whole process, and its main thread (JS, sockets). */
  serverCpuSec: number;
  serverUserSec: number;
  serverSysSec: number;
  serverMainThreadSec: number;
  clientCpuSec: number;
};

const toMiB = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** When the previous run's server exited and its upload was deleted. */
let lastFreedAt = performance.now();

async function measure(spec: ServerSpec, kind: CaseKind, size: number, round: number): Promise<Run> {
  const storageDir = path.join(storageRoot!, `${spec.name}-${kind}-${formatSize(size)}-r${round}`);
  fs.rmSync(storageDir, { recursive: true, force: true });
  fs.mkdirSync(storageDir, { recursive: true });
  syncDisk();

  const profileDir = cpuProfDir ? path.join(cpuProfDir, `${spec.name}-${kind}-${formatSize(size)}-r${round}`) : undefined;
  if (profileDir) fs.mkdirSync(profileDir, { recursive: true });

  const abort = new AbortController();
  const deadline = setTimeout(() => abort.abort(new Error(`run exceeded --run-timeout of ${runTimeoutMs / 1000} s`)), runTimeoutMs);
  const s3Prefix = `${spec.name}-${kind}-${formatSize(size)}-r${round}-${randomBytes(3).toString('hex')}/`;
  const server = await startServer(spec, storageDir, size, s3Prefix, profileDir);
  try {
    const cephPids = spec.storage === 's3' ? await s3!.daemonPids() : [];
    // Let startup settle, and give every run the same memory state: on this kind of VM the
    // memory freed by the previous run is handed back to the host after ~1-2 s (free page
    // reporting), and page cache on such memory costs ~2 s/GiB of faults to touch again.
    // Starting sometimes before and sometimes after that point made runs differ by 40 %.
    await sleep(Math.max(1000, settleMs - (performance.now() - lastFreedAt)));
    const busyBefore = await waitForQuiet(server.pid, quietWaitMs);
    if (busyBefore >= NOISY_SHARE) process.stdout.write(`(machine still busy: ${(busyBefore * 100).toFixed(0)}% of a CPU) `);
    const idle = readStatus(server.pid);
    if (!idle) throw new Error(`server ${spec.name} vanished before the run`);
    const cephBefore = cpuSeconds(cephPids);
    const cpuBefore = readCpu(server.pid);
    const clientCpuBefore = process.cpuUsage();
    const machineBefore = readMachineCpu();
    const everyoneBefore = cpuSnapshot();
    const uploadStartMs = performance.now() - server.spawnedAt;
    const sampler = new RssSampler(server.pid);
    const disk = new DiskSampler(storageDir, spec.storage === 's3' ? path.join(storageDir, S3_PARTS_DIR) : undefined);
    let result: UploadResult;
    try {
      const died = new Promise<never>((_, reject) =>
        server.child.once('exit', (code, sig) => reject(new Error(`server ${spec.name} exited during the run (code ${code}, signal ${sig})`))),
      );
      died.catch(() => {});
      const aborted = new Promise<never>((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason as Error), { once: true }));
      aborted.catch(() => {});
      result = await Promise.race([upload(server.url, size, kind === 'single' ? size : chunkSize, abort.signal), died, aborted]);
    } finally {
      sampler.stop();
      disk.stop();
    }
    const cpuAfter = readCpu(server.pid);
    const cephCpu = cpuSeconds(cephPids) - cephBefore;
    const uploadEndMs = performance.now() - server.spawnedAt;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const machineAfter = readMachineCpu();
    const irqCpu = machineAfter.irq - machineBefore.irq;
    const machineBusy = machineAfter.busy - machineBefore.busy - irqCpu;
    const everyoneAfter = cpuSnapshot();
    const end = readStatus(server.pid);

    // The bytes really are stored, at the right length.
    const stored =
      spec.storage === 's3'
        ? await s3!.objectSize(`${spec.s3Prefix ? s3Prefix : ''}${result.uploadId}`)
        : fs.statSync(path.join(storageDir, result.uploadId)).size;
    if (stored !== size) throw new Error(`server ${spec.name} stored ${stored ?? 'no'} bytes, expected ${size}`);

    const peak = Math.max(sampler.peak, end?.rssBytes ?? 0);
    // The GC lines arrive when the server exits; its isolate starts a little after the spawn,
    // so the upload window is widened by a few tens of milliseconds.
    await stopServer(server);
    const gcDuring = server.gc.filter((e) => e.ms >= uploadStartMs - 100 && e.ms <= uploadEndMs);
    const serverCpu = cpuAfter.user + cpuAfter.sys - cpuBefore.user - cpuBefore.sys;
    const clientCpuSec = (clientCpu.user + clientCpu.system) / 1e6;
    const otherCpuSec = Math.max(0, machineBusy - serverCpu - clientCpuSec - cephCpu);
    const others = otherCpuUsers(everyoneBefore, everyoneAfter, new Set([process.pid, server.pid, ...cephPids]), otherCpuSec);
    return {
      round,
      server: spec.name,
      storage: spec.storage,
      case: kind,
      sizeBytes: size,
      patchBytes: kind === 'single' ? size : chunkSize,
      patches: result.patches,
      elapsedMs: Math.round(result.elapsedMs),
      mibPerSec: Math.round((size / MiB / (result.elapsedMs / 1000)) * 10) / 10,
      idleRssMiB: toMiB(idle.rssBytes),
      peakRssMiB: toMiB(peak),
      vmHwmMiB: toMiB(end?.hwmBytes ?? NaN),
      rssGrowthMiB: toMiB(peak - idle.rssBytes),
      rssSamples: sampler.samples,
      peakStorageDirMiB: toMiB(disk.peakTotal),
      peakPartBuffersMiB: spec.storage === 's3' ? toMiB(disk.peakTemp) : null,
      cephCpuSec: spec.storage === 's3' ? round2(cephCpu) : null,
      irqCpuSec: round2(irqCpu),
      otherCpuSec: round2(otherCpuSec),
      noisy: otherCpuSec > NOISY_SHARE * (result.elapsedMs / 1000),
      otherCpuUsers: others,
      gcScavenges: args['gc-trace'] ? gcDuring.filter((e) => e.kind === 'scavenge').length : null,
      gcMarkCompacts: args['gc-trace'] ? gcDuring.filter((e) => e.kind === 'mark-compact').length : null,
      serverCpuSec: round2(serverCpu),
      serverUserSec: round2(cpuAfter.user - cpuBefore.user),
      serverSysSec: round2(cpuAfter.sys - cpuBefore.sys),
      serverMainThreadSec: round2(cpuAfter.mainUser + cpuAfter.mainSys - cpuBefore.mainUser - cpuBefore.mainSys),
      clientCpuSec: round2(clientCpuSec),
    };
  } catch (error) {
    const tail = server.stderrTail();
    throw new Error(`${(error as Error).message}${tail ? `\n--- server ${spec.name} stderr ---\n${tail}` : ''}`, { cause: error });
  } finally {
    clearTimeout(deadline);
    await stopServer(server);
    if (!args.keep) fs.rmSync(storageDir, { recursive: true, force: true });
    if (spec.storage === 's3') {
      const emptied = await s3!.empty();
      if (emptied.gcError) process.stdout.write(`(RGW garbage collection failed: ${emptied.gcError}) `);
    }
    lastFreedAt = performance.now();
  }
}

// ---------------------------------------------------------------------------------------------
// Summary

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round1 = (n: number) => Math.round(n * 10) / 10;

type Summary = {
  server: string;
  storage: StorageKind;
  case: CaseKind;
  sizeBytes: number;
  runs: number;
  mibPerSec: { median: number; min: number; max: number };
  /** The B server of the same storage, when this is not it and it was measured. */
  baseline: string | null;
  vsBaselinePct: number | null;
  idleRssMiB: number;
  peakRssMiB: number;
  vmHwmMiB: number;
  rssGrowthMiB: number;
  serverCpuSecPerGiB: number;
  serverMainThreadSecPerGiB: number;
  /** Max over the rounds; see Run. */
  peakStorageDirMiB: number;
  peakPartBuffersMiB: number | null;
  /** Median CPU of the Ceph daemons per GiB uploaded (S3 only). */
  cephCpuSecPerGiB: number | null;
  /** Median interrupt and softirq CPU of the machine per GiB uploaded. */
  irqCpuSecPerGiB: number;
  /** Median mark-compacts per run during the upload (with --gc-trace). */
  gcMarkCompacts: number | null;
};

function summarize(runs: Run[]): Summary[] {
  const out: Summary[] = [];
  for (const size of sizes) {
    for (const kind of cases) {
      const runsOf = (name: string) => runs.filter((r) => r.server === name && r.case === kind && r.sizeBytes === size);
      for (const spec of servers) {
        const mine = runsOf(spec.name);
        if (!mine.length) continue;
        const speeds = mine.map((r) => r.mibPerSec);
        const med = median(speeds);
        const baseline = spec.name === baselineOf(spec.storage) ? [] : runsOf(baselineOf(spec.storage));
        const baseMedian = baseline.length ? median(baseline.map((r) => r.mibPerSec)) : NaN;
        const perGiB = (r: Run, sec: number) => sec / (r.sizeBytes / GiB);
        out.push({
          server: spec.name,
          storage: spec.storage,
          case: kind,
          sizeBytes: size,
          runs: mine.length,
          mibPerSec: { median: round1(med), min: Math.min(...speeds), max: Math.max(...speeds) },
          baseline: baseline.length ? baselineOf(spec.storage) : null,
          vsBaselinePct: baseline.length ? round1(((med - baseMedian) / baseMedian) * 100) : null,
          idleRssMiB: round1(median(mine.map((r) => r.idleRssMiB))),
          peakRssMiB: Math.max(...mine.map((r) => r.peakRssMiB)),
          vmHwmMiB: Math.max(...mine.map((r) => r.vmHwmMiB)),
          rssGrowthMiB: Math.max(...mine.map((r) => r.rssGrowthMiB)),
          serverCpuSecPerGiB: round2(median(mine.map((r) => perGiB(r, r.serverCpuSec)))),
          serverMainThreadSecPerGiB: round2(median(mine.map((r) => perGiB(r, r.serverMainThreadSec)))),
          peakStorageDirMiB: Math.max(...mine.map((r) => r.peakStorageDirMiB)),
          peakPartBuffersMiB: spec.storage === 's3' ? Math.max(...mine.map((r) => r.peakPartBuffersMiB ?? 0)) : null,
          cephCpuSecPerGiB: spec.storage === 's3' ? round2(median(mine.map((r) => perGiB(r, r.cephCpuSec ?? 0)))) : null,
          irqCpuSecPerGiB: round2(median(mine.map((r) => perGiB(r, r.irqCpuSec)))),
          gcMarkCompacts: args['gc-trace'] ? median(mine.map((r) => r.gcMarkCompacts ?? 0)) : null,
        });
      }
    }
  }
  return out;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, ri) => {
    const line = r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
    return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
  }).join('\n');
}

function describeCase(kind: CaseKind, size: number): string {
  return kind === 'single' ? `${formatSize(size)} in 1 PATCH` : `${formatSize(size)} in ${formatSize(chunkSize)} PATCHes`;
}

function report(summary: Summary[]): string {
  const anyS3 = servers.some((spec) => spec.storage === 's3');
  const rows = [[
    'case', 'server', 'median MiB/s', 'min', 'max', 'vs B', 'idle RSS', 'peak RSS', 'VmHWM', 'growth', 'CPU s/GiB', 'main thr',
    'peak dir', ...(anyS3 ? ['peak parts', 'Ceph s/GiB'] : []), ...(args['gc-trace'] ? ['mark-compacts'] : []),
  ]];
  const mib = (n: number | null) => (n === null ? '' : `${n.toFixed(0)} MiB`);
  for (const s of summary) {
    rows.push([
      describeCase(s.case, s.sizeBytes),
      s.server,
      s.mibPerSec.median.toFixed(1),
      s.mibPerSec.min.toFixed(1),
      s.mibPerSec.max.toFixed(1),
      s.vsBaselinePct === null ? '' : `${s.vsBaselinePct >= 0 ? '+' : ''}${s.vsBaselinePct.toFixed(1)}%`,
      mib(s.idleRssMiB),
      mib(s.peakRssMiB),
      mib(s.vmHwmMiB),
      mib(s.rssGrowthMiB),
      s.serverCpuSecPerGiB.toFixed(2),
      s.serverMainThreadSecPerGiB.toFixed(2),
      mib(s.peakStorageDirMiB),
      ...(anyS3 ? [mib(s.peakPartBuffersMiB), s.cephCpuSecPerGiB?.toFixed(2) ?? ''] : []),
      ...(s.gcMarkCompacts === null ? [] : [String(s.gcMarkCompacts)]),
    ]);
  }
  const lines = [table(rows), ''];
  lines.push('MiB/s: first PATCH issued to final 204. vs B: against the B server of the same storage (B-file or B-s3).');
  lines.push('RSS: idle = before the upload, peak = max of 50 ms samples (max over rounds),');
  lines.push('VmHWM = lifetime peak of the fresh server process, growth = peak - idle. CPU = server user+sys per GiB,');
  lines.push('main thr = the part spent on the server\'s main (JavaScript) thread (medians); the rest is fs threads and GC helpers.');
  lines.push('peak dir = disk used by STORAGE_DIR (with file storage: the upload itself), 50 ms samples, max over rounds.');
  if (anyS3) lines.push(`peak parts = the same for the S3 part buffers (STORAGE_DIR/${S3_PARTS_DIR}); Ceph = CPU of its mon+osd+rgw per GiB.`);
  if (args['gc-trace']) lines.push('mark-compacts = full GCs of the server during the upload (median per run).');
  lines.push('');
  // Verdicts: every server within 10 % of its B; its memory not growing with the upload size.
  for (const s of summary) {
    const b = summary.find((x) => x.server === s.baseline && x.case === s.case && x.sizeBytes === s.sizeBytes);
    if (!b || s.vsBaselinePct === null) continue;
    const ok = s.vsBaselinePct >= -10;
    const what = describeCase(s.case, s.sizeBytes);
    lines.push(`${ok ? 'PASS' : 'FAIL'} throughput  ${what}: ${s.server} ${s.vsBaselinePct.toFixed(1)}% vs ${b.server} (limit -10%)`);
    lines.push(`     memory      ${what}: ${s.server} grows ${s.rssGrowthMiB.toFixed(0)} MiB, ${b.server} grows ${b.rssGrowthMiB.toFixed(0)} MiB during the upload`);
    if (s.storage === 's3') {
      lines.push(`     part buffers ${what}: ${s.server} peaks at ${mib(s.peakPartBuffersMiB)}, ${b.server} at ${mib(b.peakPartBuffersMiB)}`);
    }
  }
  // The price of S3: each server on S3 against itself on file storage.
  for (const s of summary.filter((x) => x.storage === 's3')) {
    const onFile = summary.find((x) => x.server === `${s.server.slice(0, -'-s3'.length)}-file` && x.case === s.case && x.sizeBytes === s.sizeBytes);
    if (!onFile) continue;
    const pct = ((s.mibPerSec.median - onFile.mibPerSec.median) / onFile.mibPerSec.median) * 100;
    lines.push(
      `S3 vs file   ${describeCase(s.case, s.sizeBytes)}: ${s.server} ${s.mibPerSec.median.toFixed(1)} MiB/s vs ${onFile.server} ${onFile.mibPerSec.median.toFixed(1)} MiB/s (${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%)`,
    );
  }
  if (sizes.length > 1) {
    const [small, large] = [Math.min(...sizes), Math.max(...sizes)];
    for (const kind of cases) {
      for (const spec of servers) {
        const g = (size: number) => summary.find((x) => x.server === spec.name && x.case === kind && x.sizeBytes === size)?.rssGrowthMiB;
        const gs = g(small);
        const gl = g(large);
        if (gs === undefined || gl === undefined) continue;
        const ok = gl - gs <= 64;
        lines.push(
          `${ok ? 'PASS' : 'WARN'} size scaling ${spec.name} ${kind}: growth ${gs.toFixed(0)} MiB at ${formatSize(small)} vs ${gl.toFixed(0)} MiB at ${formatSize(large)}`,
        );
      }
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  if (args['storage-dir']) {
    fs.mkdirSync(args['storage-dir'], { recursive: true });
    storageRoot = fs.mkdtempSync(path.join(path.resolve(args['storage-dir']), 'tus-bench-'));
  } else {
    storageRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-bench-'));
  }
  createdStorageRoot = true;

  const fsMagic = Number(fs.statfsSync(storageRoot).type);
  if ((fsMagic === TMPFS_MAGIC || fsMagic === RAMFS_MAGIC) && !args['allow-tmpfs']) {
    throw new Error(`${storageRoot} is on tmpfs/ramfs; pass --storage-dir on a real disk (or --allow-tmpfs)`);
  }
  const disk = diskInfo(storageRoot);
  const free = fs.statfsSync(storageRoot);
  const needed = Math.max(...sizes) * 1.1;
  if (free.bavail * free.bsize < needed) throw new Error(`not enough free space in ${storageRoot} for ${formatSize(Math.max(...sizes))}`);

  if (servers.some((spec) => spec.storage === 's3')) {
    s3 = await openCephS3({ startTimeoutMs: 600_000, log: (line) => process.stdout.write(line) });
  }
  const cephDiskBefore = s3 ? diskUsage(s3.stateDir) : undefined;

  const plan: Array<{ round: number; spec: ServerSpec; kind: CaseKind; size: number }> = [];
  for (let round = 1; round <= rounds; round++) {
    for (const size of sizes) for (const kind of cases) for (const spec of servers) plan.push({ round, spec, kind, size });
  }

  const git = (...gitArgs: string[]) => spawnSync('git', gitArgs, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const meta = {
    startedAt: new Date().toISOString(),
    gitHead: git('rev-parse', 'HEAD'),
    /** Uncommitted changes in the code under test, if any. */
    gitChanges: git('status', '--porcelain', '--', 'server/src', 'e2e/bench').split('\n').filter(Boolean),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    totalMemGiB: round1(os.totalmem() / GiB),
    kernel: os.release(),
    disk,
    sizes,
    chunkBytes: chunkSize,
    rounds,
    cases,
    settleSec: settleMs / 1000,
    clientBufferBytes: BUFFER_SIZE,
    servers: servers.map((s) => ({ ...s, entry: path.relative(REPO_ROOT, s.entry) || s.entry })),
    s3: s3 && {
      endpoint: s3.env.S3_ENDPOINT,
      bucket: s3.bucket,
      partSizeBytes: s3PartSize,
      cephStartedByBench: s3.startedHere,
      cephStateDir: s3.stateDir,
      cephStateDiskBytesBefore: cephDiskBefore,
    },
  };
  process.stdout.write(
    `tus throughput bench: ${sizes.map(formatSize).join(', ')}; cases ${cases.join(', ')}; chunk ${formatSize(chunkSize)}; ${rounds} rounds; ${plan.length} runs\n` +
      `servers: ${servers.map((s) => `${s.name}=${[path.relative(REPO_ROOT, s.entry) || s.entry, ...s.nodeArgs].join(' ')}`).join(', ')}\n` +
      `node ${process.version}, ${meta.cpus} CPUs, storage ${disk.storageRoot} on ${disk.device} (${disk.fsType}, mounted at ${disk.mountPoint})\n` +
      (s3
        ? `S3: ${s3.env.S3_ENDPOINT} bucket ${s3.bucket}, part size ${formatSize(s3PartSize)}; Ceph ${s3.startedHere ? 'started by this bench' : 'already running'}, ` +
          `state ${s3.stateDir} uses ${formatMiB(cephDiskBefore!)} of disk\n`
        : '') +
      '\n',
  );

  const runs: Run[] = [];
  const discarded: Run[] = [];
  /** The share of one CPU that other processes used during a run. */
  const disturbance = (run: Run) => run.otherCpuSec / (run.elapsedMs / 1000);
  for (const [i, step] of plan.entries()) {
    const label = `[${String(i + 1).padStart(String(plan.length).length)}/${plan.length}] round ${step.round} ${step.spec.name} ${describeCase(step.kind, step.size)}`;
    const attempts: Run[] = [];
    for (let attempt = 0; ; attempt++) {
      process.stdout.write(`${label}${attempt ? ` (retry ${attempt})` : ''} ... `);
      const run = await measure(step.spec, step.kind, step.size, step.round);
      process.stdout.write(
        `${run.mibPerSec.toFixed(1)} MiB/s (${(run.elapsedMs / 1000).toFixed(2)} s, ${run.patches} PATCH), RSS idle ${run.idleRssMiB} -> peak ${run.peakRssMiB} MiB, ` +
          `server CPU ${run.serverCpuSec} s (user ${run.serverUserSec}, sys ${run.serverSysSec}, main thread ${run.serverMainThreadSec})` +
          `${run.gcMarkCompacts === null ? '' : `, GC ${run.gcScavenges} scavenges ${run.gcMarkCompacts} mark-compacts`}` +
          `, disk peak ${run.peakStorageDirMiB} MiB` +
          `${run.peakPartBuffersMiB === null ? '' : ` (parts ${run.peakPartBuffersMiB} MiB), Ceph CPU ${run.cephCpuSec} s`}, irq ${run.irqCpuSec} s` +
          `${run.noisy ? ` NOISY: other processes used ${run.otherCpuSec} CPU s (${run.otherCpuUsers})` : ''}\n`,
      );
      attempts.push(run);
      if (!run.noisy || attempt >= retries) {
        // Every attempt disturbed: keep the least disturbed one.
        const kept = run.noisy ? attempts.reduce((a, b) => (disturbance(b) < disturbance(a) ? b : a)) : run;
        runs.push(kept);
        discarded.push(...attempts.filter((a) => a !== kept));
        if (kept !== run) process.stdout.write(`    keeping the least disturbed attempt: ${kept.mibPerSec.toFixed(1)} MiB/s\n`);
        break;
      }
    }
  }

  const summary = summarize(runs);
  process.stdout.write(`\n${report(summary)}\n`);
  const cephDiskAfter = s3 ? diskUsage(s3.stateDir) : undefined;
  if (s3) process.stdout.write(`Ceph state ${s3.stateDir}: ${formatMiB(cephDiskBefore!)} of disk before, ${formatMiB(cephDiskAfter!)} after\n`);
  const noisy = runs.filter((r) => r.noisy).length;
  if (noisy) process.stdout.write(`\nWARNING: ${noisy} of ${runs.length} kept runs were disturbed by other processes (otherCpuSec in the JSON).\n`);
  if (args.out) {
    const out = path.resolve(args.out);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify({ meta: { ...meta, finishedAt: new Date().toISOString(), cephStateDiskBytesAfter: cephDiskAfter }, summary, runs, discardedNoisyRuns: discarded }, null, 2)}\n`);
    process.stdout.write(`\nresults written to ${out}\n`);
  }
}

main().then(
  async () => {
    clearTimeout(totalTimer);
    killAll();
    removeStorageRoot();
    await s3?.close();
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
    void shutdown(1);
  },
);
