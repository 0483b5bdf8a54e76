/** The command line of `npm run bench`. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SERVER_NAMES } from './bench-servers.js';
import { parseSize } from './units.js';
import { WORKLOAD_NAMES, type WorkloadName } from './workload-types.js';

export const USAGE = `usage: npm run bench -- [options]
  --workloads LIST     any of ${WORKLOAD_NAMES.join(',')} (default: all)
                       chunked-checksum is chunked with \`Upload-Checksum: sha256\` on every PATCH (the checksum
                       extension), run on A and --extra variants only (plain @tus/server has no checksum support):
                       compare its row with A's chunked row. parallel sends the chunked workload's bytes as 4
                       partial uploads at once, then the final upload (concatenation; A and --extra only)
  --servers LIST       any of ${SERVER_NAMES.join(', ')} (default A-file,B-file,C-file), interleaved in this order.
                       A = this server as \`npm start\` runs it, B = plain @tus/server + @tus/file-store / @tus/s3-store
                       (each B is also run a second time, B', to show the noise), C = the node:http ceiling (file only).
                       On S3 (the local Ceph): --servers A-s3,B-s3 runs single, chunked, concurrent and memory.
  --rounds N           interleaved rounds (default 3; 1 with --quick)
  --quick              small sizes, 1 round, short settle: a smoke run of a minute or two
  --tiny               even smaller than --quick (the bench's own test, e2e/bench/bench.test.ts)
  --out FILE           also write every run and the summary as JSON to FILE
  --storage-dir DIR    parent for the per-run storage directories (default: OS temp dir); must be a real disk
  --s3-part-size SIZE  S3_PART_SIZE of the S3 servers (default 8MiB)
  --run-timeout SEC    limit for one measured run, server start to the end of its checks (default 300)
  --total-timeout SEC  limit for the whole benchmark (default 1800)
  --settle SEC         least time between freeing the previous run's data and the next window (default 5; 1 with --quick)
  --quiet-wait SEC     before each window, wait up to SEC for other processes to leave the CPUs idle (default 60; 5 with --quick)
  --retries N          re-run a run disturbed by other processes' CPU use up to N times, then keep the least
                       disturbed attempt (default 2; 0 with --quick)
  --extra 'NAME=[NODE_FLAG...] SCRIPT'
                       also measure a variant of this server, started like A (same env), e.g.
                       'A-noheap=server/dist/main.js' (A without npm start's V8 flag); a NAME ending in -s3
                       runs on S3; its rows compare it with the same reference and ceiling (repeatable)
  --cpu-prof DIR       start every server with --cpu-prof, profiles in DIR/<server>-<workload>-r<round>
  --keep               keep the storage directories (default: deleted)
  --allow-tmpfs        allow a tmpfs/ramfs storage directory
  --help`;

export type BenchOptions = Readonly<{
  workloads: WorkloadName[];
  servers: string[];
  extras: string[];
  rounds: number;
  quick: boolean;
  /** Workload sizes: issue 9's, --quick's or --tiny's. */
  scale: 'full' | 'quick' | 'tiny';
  out?: string;
  storageDir?: string;
  s3PartSize: number;
  runTimeoutMs: number;
  totalTimeoutMs: number;
  settleMs: number;
  quietWaitMs: number;
  retries: number;
  cpuProfDir?: string;
  keep: boolean;
  allowTmpfs: boolean;
  help: boolean;
}>;

function count(text: string, name: string, allowZero = false): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || (!allowZero && n === 0)) throw new Error(`--${name} expects a ${allowZero ? 'count' : 'positive integer'}, got "${text}"`);
  return n;
}

function seconds(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} expects seconds, got "${text}"`);
  return n * 1000;
}

const list = (text: string) => text.split(',').map((s) => s.trim()).filter(Boolean);

export function parseBenchOptions(argv: readonly string[]): BenchOptions {
  const { values: v } = parseArgs({
    args: [...argv],
    options: {
      workloads: { type: 'string', default: WORKLOAD_NAMES.join(',') },
      servers: { type: 'string', default: 'A-file,B-file,C-file' },
      extra: { type: 'string', multiple: true, default: [] },
      rounds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      out: { type: 'string' },
      'storage-dir': { type: 'string' },
      's3-part-size': { type: 'string', default: '8MiB' },
      'run-timeout': { type: 'string', default: '300' },
      'total-timeout': { type: 'string', default: '1800' },
      settle: { type: 'string' },
      'quiet-wait': { type: 'string' },
      retries: { type: 'string' },
      'cpu-prof': { type: 'string' },
      keep: { type: 'boolean', default: false },
      'allow-tmpfs': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const quick = v.quick || v.tiny;
  const workloads = list(v.workloads).map((name) => {
    if (!(WORKLOAD_NAMES as readonly string[]).includes(name)) throw new Error(`--workloads: unknown workload "${name}" (${WORKLOAD_NAMES.join(', ')})`);
    return name as WorkloadName;
  });
  return {
    workloads,
    servers: list(v.servers),
    extras: v.extra,
    rounds: count(v.rounds ?? (quick ? '1' : '3'), 'rounds'),
    quick,
    scale: v.tiny ? 'tiny' : quick ? 'quick' : 'full',
    ...(v.out ? { out: path.resolve(v.out) } : {}),
    ...(v['storage-dir'] ? { storageDir: path.resolve(v['storage-dir']) } : {}),
    s3PartSize: parseSize(v['s3-part-size']),
    runTimeoutMs: seconds(v['run-timeout'], 'run-timeout'),
    totalTimeoutMs: seconds(v['total-timeout'], 'total-timeout'),
    settleMs: seconds(v.settle ?? (quick ? '1' : '5'), 'settle'),
    quietWaitMs: seconds(v['quiet-wait'] ?? (quick ? '5' : '60'), 'quiet-wait'),
    retries: count(v.retries ?? (quick ? '0' : '2'), 'retries', true),
    ...(v['cpu-prof'] ? { cpuProfDir: path.resolve(v['cpu-prof']) } : {}),
    keep: v.keep,
    allowTmpfs: v['allow-tmpfs'],
    help: v.help,
  };
}
