/**
 * `npm run bench`: every workload of issue 9 against this server (A, started exactly as
 * `npm start` runs it), the reference (B: plain @tus/server 2.x on node:http, and B', the same
 * again, for the noise) and the ceiling (C: the least node:http work that serves the workload),
 * interleaved A, B, B', C per workload and round, each measured run on a fresh server process
 * and a fresh storage directory. Prints one table of medians; `--help` lists the options.
 *
 *   npm run bench                                   # everything, file storage, 3 rounds
 *   npm run bench -- --quick                        # smoke run: small sizes, 1 round
 *   npm run bench -- --workloads small,head-one --rounds 2 --out /tmp/bench.json
 *   npm run bench -- --servers A-s3,B-s3            # throughput and memory on the local Ceph
 *
 * Files: workloads.ts (sizes) and workload-*.ts (what each one does), measured-run.ts (one
 * run and its noise controls), bench-servers.ts (A, B, C and how they start), proc-stats.ts
 * (/proc), summary.ts and table.ts (the output), process-control.ts (killing by PID).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, startCommandArgs } from '../support/start-command.js';
import { parseBenchOptions, USAGE } from './bench-options.js';
import { prepareStartEntry, serverSpecs, startsWithTsx, type ServerSpec } from './bench-servers.js';
import { openCephS3, type CephS3 } from './ceph-s3.js';
import { measure, syncDisk, type Run } from './measured-run.js';
import { installProcessControl, killAll, onExit, onShutdown, shutdown } from './process-control.js';
import { noiseOf, summarize } from './summary.js';
import { markdownTable, noiseLine } from './table.js';
import { formatSize, GiB, round1 } from './units.js';
import { createWorkloads } from './workloads.js';
import type { Workload } from './workload-types.js';

const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

const options = parseBenchOptions(process.argv.slice(2));
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

async function main(): Promise<void> {
  const disarm = installProcessControl(options.totalTimeoutMs);
  const catalogue = createWorkloads(options.scale);
  const workloads: Workload[] = options.workloads.map((name) => catalogue[name]);
  if (options.servers.some((name) => name.startsWith('A-'))) prepareStartEntry();
  const servers = serverSpecs(options.servers, options.extras);
  const storages = [...new Set(servers.map((s) => s.storage))];
  if (servers.some((s) => s.role === 'C' && s.storage === 's3')) throw new Error('--servers: the ceiling (C) serves file storage only');

  const parent = options.storageDir ?? os.tmpdir();
  fs.mkdirSync(parent, { recursive: true });
  const storageRoot = fs.mkdtempSync(path.join(parent, 'tus-bench-'));
  if (!options.keep) onExit(() => fs.rmSync(storageRoot, { recursive: true, force: true }));
  const fsMagic = Number(fs.statfsSync(storageRoot).type);
  if ((fsMagic === TMPFS_MAGIC || fsMagic === RAMFS_MAGIC) && !options.allowTmpfs) {
    throw new Error(`${storageRoot} is on tmpfs/ramfs; pass --storage-dir on a real disk (or --allow-tmpfs)`);
  }

  type Step = { round: number; workload: Workload; spec: ServerSpec };
  const plan: Step[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const workload of workloads) for (const spec of servers) if (workload.storages.includes(spec.storage) && (!workload.roles || workload.roles.includes(spec.role))) plan.push({ round, workload, spec });
  }
  if (plan.length === 0) throw new Error('nothing to run: no workload applies to these servers (S3 runs single, chunked, concurrent and memory)');
  const free = fs.statfsSync(storageRoot);
  const needed = Math.max(...plan.map((s) => s.workload.diskBytes)) * 1.1;
  if (free.bavail * free.bsize < needed) throw new Error(`not enough free space in ${storageRoot} for ${formatSize(Math.round(needed))}`);

  let s3: CephS3 | undefined;
  if (storages.includes('s3')) {
    s3 = await openCephS3({ startTimeoutMs: 600_000, log: (line) => process.stdout.write(line) });
    const opened = s3;
    onShutdown(() => opened.close());
  }

  // Start-up, settle, quiet check, stop and sync come on top of each workload's own time.
  const overheadSec = Math.max(1, options.settleMs / 1000) + 3;
  const estimateSec = plan.reduce((sum, s) => sum + overheadSec + s.workload.estimateSec * (s.spec.storage === 's3' ? 3 : 1), 0);
  const git = (...args: string[]) => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const meta = {
    startedAt: new Date().toISOString(),
    gitHead: git('rev-parse', 'HEAD'),
    /** Uncommitted changes in the code under test, if any. */
    gitChanges: git('status', '--porcelain', '--', 'server', 'e2e/bench', 'package.json').split('\n').filter(Boolean),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    totalMemGiB: round1(os.totalmem() / GiB),
    kernel: os.release(),
    storageRoot,
    startCommand: `node ${startCommandArgs().join(' ')}`,
    compiled: !startsWithTsx(),
    options,
    workloads: workloads.map((w) => ({ name: w.name, title: w.title })),
    servers: servers.map((s) => ({ name: s.name, role: s.role, storage: s.storage, command: `node ${s.nodeArgs.map((a) => path.relative(REPO_ROOT, a) || a).join(' ')}` })),
    s3: s3 && { endpoint: s3.env.S3_ENDPOINT, bucket: s3.bucket, partSizeBytes: options.s3PartSize, cephStartedByBench: s3.startedHere },
  };
  process.stdout.write(
    `tus bench: ${workloads.map((w) => w.name).join(', ')}; ${options.rounds} round(s); ${plan.length} runs; estimated ${Math.ceil(estimateSec / 60)} min\n` +
      servers.map((s) => `  ${s.name.padEnd(8)} ${meta.servers.find((m) => m.name === s.name)!.command}\n`).join('') +
      `node ${process.version}, ${meta.cpus} CPUs, storage under ${storageRoot}${s3 ? `; S3 ${s3.env.S3_ENDPOINT} bucket ${s3.bucket}` : ''}\n\n`,
  );

  syncDisk();
  const runs: Run[] = [];
  const discarded: Run[] = [];
  const disturbance = (run: Run) => run.otherCpuSec / Math.max(0.001, run.windowMs / 1000);
  for (const [i, step] of plan.entries()) {
    const label = `[${String(i + 1).padStart(String(plan.length).length)}/${plan.length}] round ${step.round} ${step.spec.name} ${step.workload.name}`;
    const attempts: Run[] = [];
    for (let attempt = 0; ; attempt++) {
      process.stdout.write(`${label}${attempt ? ` (retry ${attempt})` : ''} ... `);
      const run = await measure(step.spec, step.workload, step.round, {
        storageRoot,
        settleMs: options.settleMs,
        quietWaitMs: options.quietWaitMs,
        runTimeoutMs: options.runTimeoutMs,
        keep: options.keep,
        s3PartSize: options.s3PartSize,
        ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
        ...(s3 ? { s3 } : {}),
      });
      const figures = step.workload.metrics.map((m) => `${m.label} ${run.metrics[m.key] ?? '–'}`).join(', ');
      process.stdout.write(
        `${figures}; VmHWM ${run.vmHwmMiB} MiB, server CPU ${run.serverCpuSec} s (main thread ${run.serverMainThreadSec}), client CPU ${run.clientCpuSec} s` +
          `${run.cephCpuSec === null ? '' : `, Ceph CPU ${run.cephCpuSec} s`}` +
          `${run.noisy ? ` NOISY: other processes used ${run.otherCpuSec} CPU s (${run.otherCpuUsers})` : ''}\n`,
      );
      attempts.push(run);
      if (!run.noisy || attempt >= options.retries) {
        // Every attempt disturbed: keep the least disturbed one.
        const kept = run.noisy ? attempts.reduce((a, b) => (disturbance(b) < disturbance(a) ? b : a)) : run;
        runs.push(kept);
        discarded.push(...attempts.filter((a) => a !== kept));
        break;
      }
    }
  }

  const summary = summarize(runs, workloads, storages);
  const noise = noiseOf(summary);
  process.stdout.write(
    `\nmedians of ${options.rounds} round(s); ours = A, reference = B (plain @tus/server), ceiling = C (minimal node:http)\n\n` +
      `${markdownTable(summary)}\n\n${noiseLine(noise)}\n` +
      'peak RSS = VmHWM of the server process itself (never npm); RSS growth = peak in the last quarter of the upload minus the first.\n',
  );
  const noisy = runs.filter((r) => r.noisy).length;
  if (noisy) process.stdout.write(`WARNING: ${noisy} of ${runs.length} kept runs were disturbed by other processes (otherCpuSec in the JSON).\n`);
  if (options.out) {
    fs.mkdirSync(path.dirname(options.out), { recursive: true });
    const json = { meta: { ...meta, finishedAt: new Date().toISOString() }, summary, noise, runs, discardedNoisyRuns: discarded };
    fs.writeFileSync(options.out, `${JSON.stringify(json, null, 2)}\n`);
    process.stdout.write(`results written to ${options.out}\n`);
  }
  disarm();
  if (s3) await s3.close();
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void shutdown(1);
  },
);
