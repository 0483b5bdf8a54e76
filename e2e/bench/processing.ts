/**
 * What post-upload processing costs: for an upload to the real server process,
 *
 *   (i)   how long the FINAL PATCH takes, from the start of sending the last chunk to the
 *         response (compared with the other PATCHes of the same upload: processing is queued,
 *         not run, before the answer);
 *   (ii)  the time from that response (the last byte acknowledged) to state `done`, polling
 *         GET /uploads/<id> every 100 ms (and, exactly, from the status record's timestamps);
 *   (iii) the server's RSS: idle before the upload, peak while uploading, peak while
 *         processing (VmRSS from /proc/<pid>/status every 50 ms), and VmHWM at the end.
 *
 *   npx tsx e2e/bench/processing.ts [--size 1GiB,256MiB] [--chunk 8MiB] [--rounds 1]
 *                                   [--out results.json] [--storage-dir DIR] [--force]
 *
 * Every run gets a fresh server process (`node --import tsx server/src/main.ts`, as
 * `npm start` runs it) and a fresh storage directory, both removed afterwards. The client is
 * raw node:http over one keep-alive socket, PATCHes of --chunk bytes streamed from one
 * reusable random buffer. Refuses to start while another e2e/bench script runs (--force
 * overrides). Every spawned process is killed by its PID on exit, errors and timeouts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { startCommandArgs } from '../support/start-command.js';
import { killChildren } from '../support/kill-children.js';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RSS_SAMPLE_MS = 50;
const POLL_MS = 100;

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '1GiB,256MiB' },
    chunk: { type: 'string', default: '8MiB' },
    rounds: { type: 'string', default: '1' },
    out: { type: 'string' },
    'storage-dir': { type: 'string' },
    'run-timeout': { type: 'string', default: '300' },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write('usage: npx tsx e2e/bench/processing.ts [--size 1GiB,256MiB] [--chunk 8MiB] [--rounds 1] [--out FILE] [--storage-dir DIR] [--run-timeout SEC] [--force]\n');
  process.exit(0);
}

function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|k|m|g)?\s*$/i.exec(text);
  if (!match) throw new Error(`not a size: "${text}" (expected e.g. 1GiB, 256MiB)`);
  const units: Record<string, number> = { b: 1, k: 1024, kib: 1024, m: MiB, mib: MiB, g: GiB, gib: GiB };
  return Math.round(Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1));
}
const formatSize = (bytes: number) => (bytes % GiB === 0 ? `${bytes / GiB} GiB` : bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} B`);
const mib = (valueMiB: number) => valueMiB.toFixed(1);
const ms = (value: number) => value.toFixed(0);

const sizes = args.size.split(',').map(parseSize);
const chunkSize = parseSize(args.chunk);
const rounds = Number(args.rounds);
const runTimeoutMs = Number(args['run-timeout']) * 1000;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds expects a positive integer');
if (!Number.isFinite(runTimeoutMs) || runTimeoutMs <= 0) throw new Error('--run-timeout expects seconds');

// ---------------------------------------------------------------------------------------------
// Bookkeeping: what we spawn dies by PID; what we create is removed.

const children = new Set<ChildProcess>();
const directories = new Set<string>();

function cleanup(): void {
  killChildren(children);
  for (const dir of directories) fs.rmSync(dir, { recursive: true, force: true });
  directories.clear();
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping\n`);
    process.exit(130);
  });
}

/** This process and its ancestors (npx, tsx's wrapper), which name this script too. */
function ancestors(): Set<number> {
  const pids = new Set<number>();
  for (let pid = process.pid, i = 0; pid > 1 && i < 64; i += 1) {
    pids.add(pid);
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return pids;
}

/**
 * Other benchmark scripts running now (e2e/bench/*.ts, not the servers they start): their
 * numbers and ours would disturb each other.
 */
function otherBenchmarks(): string[] {
  const mine = ancestors();
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || mine.has(Number(entry))) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (/e2e\/bench\/(throughput|processing)\.ts/.test(cmdline)) found.push(`${entry}: ${cmdline.slice(0, 160)}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const sleep = (delay: number) => new Promise<void>((resolve) => setTimeout(resolve, delay));

function readProcStatus(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
    return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The server

type Server = { child: ChildProcess; pid: number; url: string; dir: string };

async function startServer(): Promise<Server> {
  const parent = args['storage-dir'] ? path.resolve(args['storage-dir']) : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(parent, 'tus-bench-processing-'));
  directories.add(dir);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: '0', STORAGE_DIR: dir, LOG_LEVEL: 'warn' };
  const child = spawn(process.execPath, startCommandArgs(), { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  if (child.pid === undefined) throw new Error('could not spawn the server');
  const pid = child.pid;
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 30 s:\n${output}`)), 30_000);
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const match = /^listening on (http:\/\/\S+)$/m.exec(buffered);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  return { child, pid, url, dir };
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));
    process.kill(server.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(server.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 10_000);
    await exited;
    clearTimeout(timer);
  }
  children.delete(server.child);
  fs.rmSync(server.dir, { recursive: true, force: true });
  directories.delete(server.dir);
}

// ---------------------------------------------------------------------------------------------
// The client: raw node:http over one keep-alive socket

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(url: string, method: string, headers: Record<string, string | number>, body?: { buffer: Buffer; length: number }): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; sentAt: number; respondedAt: number }> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = http.request(url, { method, headers, agent, timeout: 120_000 }, (res) => {
      const respondedAt = performance.now();
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), sentAt, respondedAt }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    if (!body) return req.end();
    // Stream the body from the reusable buffer, with backpressure.
    let written = 0;
    const writeMore = () => {
      while (written < body.length) {
        const piece = body.buffer.subarray(0, Math.min(body.buffer.length, body.length - written));
        written += piece.length;
        if (!req.write(piece)) return req.once('drain', writeMore);
      }
      req.end();
    };
    writeMore();
  });
}

type Sample = { t: number; rss: number };

type RunResult = {
  size: number;
  chunkSize: number;
  patches: number;
  uploadMs: number;
  /** Median and max of every PATCH but the last: send start to response headers. */
  otherPatchMedianMs: number;
  otherPatchMaxMs: number;
  /** The final PATCH: start of sending the last chunk to its response. */
  finalPatchMs: number;
  finalPatchHadLink: boolean;
  /** Final response to the first poll that saw `done` (100 ms polling). */
  toDonePolledMs: number;
  /** Final response to the status record's own `done` timestamp (wall clock, same machine). */
  toDoneRecordedMs: number;
  /** Per-step durations from the record's timestamps. */
  stepsMs: Record<string, number>;
  sha256Matches: boolean;
  idleRssMiB: number;
  uploadPeakRssMiB: number;
  /** RSS at the last sample before the final response: what the upload left. */
  rssAtFinalMiB: number;
  processingPeakRssMiB: number;
  /** How much processing added on top of what the upload left. */
  processingPeakOverFinalMiB: number;
  processingPeakOverIdleMiB: number;
  hwmMiB: number;
  rssSamples: number;
};

async function runOnce(size: number, payload: Buffer): Promise<RunResult> {
  const server = await startServer();
  const deadline = Date.now() + runTimeoutMs;
  try {
    // Idle: let startup settle, then sample for a second.
    await sleep(1500);
    const idle: number[] = [];
    for (let i = 0; i < 20; i += 1) {
      const s = readProcStatus(server.pid);
      if (s) idle.push(s.rss);
      await sleep(RSS_SAMPLE_MS);
    }
    const idleRss = idle.sort((a, b) => a - b)[Math.floor(idle.length / 2)] ?? NaN;

    let phase: 'upload' | 'processing' | 'after' = 'upload';
    const samples: Record<'upload' | 'processing', Sample[]> = { upload: [], processing: [] };
    const sampler = setInterval(() => {
      const s = readProcStatus(server.pid);
      if (s && phase !== 'after') samples[phase].push({ t: performance.now(), rss: s.rss });
    }, RSS_SAMPLE_MS);

    try {
      const created = await request(`${server.url}/files/`, 'POST', {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': size,
        'Upload-Metadata': `filename ${Buffer.from('bench.bin').toString('base64')}`,
      });
      if (created.status !== 201) throw new Error(`POST answered ${created.status}: ${created.text}`);
      const uploadUrl = new URL(String(created.headers.location), server.url).toString();
      const id = uploadUrl.split('/').pop() ?? '';

      const patchMs: number[] = [];
      const uploadStart = performance.now();
      let final: Awaited<ReturnType<typeof request>> | undefined;
      for (let offset = 0; offset < size; offset += chunkSize) {
        if (Date.now() > deadline) throw new Error('run timeout while uploading');
        const length = Math.min(chunkSize, size - offset);
        const res = await request(
          uploadUrl,
          'PATCH',
          { 'Tus-Resumable': '1.0.0', 'Upload-Offset': offset, 'Content-Type': 'application/offset+octet-stream', 'Content-Length': length },
          { buffer: payload, length },
        );
        if (res.status !== 204) throw new Error(`PATCH at ${offset} answered ${res.status}: ${res.text}`);
        patchMs.push(res.respondedAt - res.sentAt);
        if (offset + length >= size) final = res;
      }
      if (!final) throw new Error('no final PATCH');
      const finalAt = final.respondedAt;
      const finalWall = Date.now() - (performance.now() - finalAt);
      phase = 'processing';

      let done: { state: string; updatedAt: string; processors: Record<string, { at: string; result?: { sha256?: string } }> } | undefined;
      let polledAt = 0;
      for (let polls = 0; polls < runTimeoutMs / POLL_MS && Date.now() < deadline; polls += 1) {
        const status = await request(`${server.url}/uploads/${id}`, 'GET', {});
        const body = JSON.parse(status.text) as NonNullable<typeof done>;
        if (['done', 'failed', 'rejected'].includes(body.state)) {
          done = body;
          polledAt = status.respondedAt;
          break;
        }
        await sleep(POLL_MS);
      }
      phase = 'after';
      if (!done) throw new Error('processing did not settle in time');
      if (done.state !== 'done') throw new Error(`processing ended ${done.state}: ${JSON.stringify(done)}`);

      const expected = createHash('sha256');
      for (let offset = 0; offset < size; offset += chunkSize) expected.update(payload.subarray(0, Math.min(chunkSize, size - offset)));
      const others = patchMs.slice(0, -1).sort((a, b) => a - b);
      const steps: Record<string, number> = {};
      let previous = finalWall;
      for (const [name, record] of Object.entries(done.processors)) {
        const at = Date.parse(record.at);
        steps[name] = at - previous;
        previous = at;
      }
      const hwm = readProcStatus(server.pid)?.hwm ?? NaN;
      const peak = (list: Sample[]) => Math.max(...list.map((s) => s.rss));
      const processingPeak = peak(samples.processing.length > 0 ? samples.processing : [{ t: 0, rss: NaN }]);
      return {
        size,
        chunkSize,
        patches: patchMs.length,
        uploadMs: finalAt - uploadStart,
        otherPatchMedianMs: others[Math.floor(others.length / 2)] ?? NaN,
        otherPatchMaxMs: others.at(-1) ?? NaN,
        finalPatchMs: patchMs.at(-1) ?? NaN,
        finalPatchHadLink: final.headers.link === `</uploads/${id}>; rel="status"`,
        toDonePolledMs: polledAt - finalAt,
        toDoneRecordedMs: Date.parse(done.updatedAt) - finalWall,
        stepsMs: steps,
        sha256Matches: done.processors.sha256?.result?.sha256 === expected.digest('hex'),
        idleRssMiB: idleRss / MiB,
        uploadPeakRssMiB: peak(samples.upload) / MiB,
        rssAtFinalMiB: (samples.upload.at(-1)?.rss ?? NaN) / MiB,
        processingPeakRssMiB: processingPeak / MiB,
        processingPeakOverFinalMiB: (processingPeak - (samples.upload.at(-1)?.rss ?? NaN)) / MiB,
        processingPeakOverIdleMiB: (processingPeak - idleRss) / MiB,
        hwmMiB: hwm / MiB,
        rssSamples: samples.upload.length + samples.processing.length,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await stopServer(server);
  }
}

async function main(): Promise<void> {
  const others = otherBenchmarks();
  if (others.length > 0 && !args.force) {
    process.stderr.write(`another benchmark is running; try again when it is done (or --force):\n  ${others.join('\n  ')}\n`);
    process.exit(2);
  }
  const payload = randomBytes(chunkSize);
  const results: RunResult[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    for (const size of sizes) {
      process.stderr.write(`round ${round}: ${formatSize(size)}...\n`);
      const result = await runOnce(size, payload);
      results.push(result);
      process.stderr.write(`  ${JSON.stringify(result)}\n`);
    }
  }

  const rows = results.map((r) => [
    formatSize(r.size),
    `${r.patches}×${formatSize(r.chunkSize)}`,
    ms(r.uploadMs),
    `${ms(r.otherPatchMedianMs)} / ${ms(r.otherPatchMaxMs)}`,
    ms(r.finalPatchMs),
    ms(r.toDonePolledMs),
    ms(r.toDoneRecordedMs),
    Object.entries(r.stepsMs)
      .map(([name, value]) => `${name} ${ms(value)}`)
      .join(', '),
    mib(r.idleRssMiB),
    mib(r.uploadPeakRssMiB),
    mib(r.rssAtFinalMiB),
    mib(r.processingPeakRssMiB),
    (r.processingPeakOverIdleMiB >= 0 ? '+' : '') + mib(r.processingPeakOverIdleMiB),
    (r.processingPeakOverFinalMiB >= 0 ? '+' : '') + mib(r.processingPeakOverFinalMiB),
    mib(r.hwmMiB),
    r.sha256Matches && r.finalPatchHadLink ? 'yes' : 'NO',
  ]);
  const header = ['size', 'PATCHes', 'upload ms', 'other PATCH ms (median / max)', 'final PATCH ms', 'to done, polled ms', 'to done, recorded ms', 'steps ms', 'idle RSS MiB', 'upload peak MiB', 'RSS at final response MiB', 'processing peak MiB', 'processing peak - idle MiB', 'processing peak - at final MiB', 'VmHWM MiB', 'sha256 + Link ok'];
  process.stdout.write(`\n| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`);
  for (const row of rows) process.stdout.write(`| ${row.join(' | ')} |\n`);
  process.stdout.write(`\nnode ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), storage under ${args['storage-dir'] ?? os.tmpdir()}\n`);
  if (args.out) fs.writeFileSync(args.out, JSON.stringify({ node: process.version, cpus: os.cpus().length, results }, null, 2));
  agent.destroy();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
