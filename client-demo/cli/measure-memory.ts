/**
 * Peak memory of the CLI uploader as files grow: uploads a 1 MiB, a 256 MiB and a 2 GiB file
 * (sparse, so making them costs nothing) to the real server on 127.0.0.1, and reads the CLI
 * process's peak resident set (VmHWM in /proc/<pid>/status, Linux only) while it runs.
 * A measurement, not a test: numbers depend on the machine.
 *
 *   npx tsx client-demo/cli/measure-memory.ts [--chunk-size 8MiB]
 *
 * The server's storage and every file made here live in temporary folders removed at the end.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir, REPO_ROOT, startServer, withTimeout } from '../../e2e/support/server-process.js';
import { formatBytes } from './units.js';

const MiB = 1024 ** 2;
const SIZES = [1 * MiB, 256 * MiB, 2048 * MiB];
const SAMPLE_MS = 20;

/** The peak resident set of a process so far, in bytes, or undefined once it has exited. */
async function peakRssOf(pid: number): Promise<number | undefined> {
  let status: string;
  try {
    status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const peak = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) * 1024;
  // An exiting process (a zombie) has no Vm* lines left.
  return Number.isFinite(peak) ? peak : undefined;
}

type Run = { size: number; seconds: number; peakRss: number };

async function uploadOnce(file: string, size: number, endpoint: string, stateFile: string, chunkSize: string): Promise<Run> {
  const args = ['--import', 'tsx', 'client-demo/cli/main.ts', file, '--endpoint', endpoint, '--state-file', stateFile, '--chunk-size', chunkSize, '--quiet', '--retries', '0'];
  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', HOME: path.dirname(stateFile) }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('the CLI could not be spawned');
  const pid = child.pid;
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdout?.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let peak = 0;
  let running = true;
  void exited.then(() => (running = false));
  // VmHWM only grows: the last reading before exit is the peak, give or take the last SAMPLE_MS.
  const sampling = (async () => {
    while (running) {
      peak = Math.max(peak, (await peakRssOf(pid)) ?? 0);
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  let code: number | null;
  try {
    code = await withTimeout(exited, 10 * 60_000, `the upload of ${formatBytes(size)}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  }
  await sampling;
  if (code !== 0) throw new Error(`the CLI exited with ${code}: ${stderr}`);
  return { size, seconds: (performance.now() - started) / 1000, peakRss: peak };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { 'chunk-size': { type: 'string', default: '8MiB' } } });
  const chunkSize = values['chunk-size'];
  const work = await makeTempDir('tus-cli-memory-');
  const server = await startServer({ env: { LOG_LEVEL: 'warn' } });
  const runs: Run[] = [];
  try {
    for (const size of SIZES) {
      const file = path.join(work, `sparse-${size}.bin`);
      await fs.writeFile(file, '');
      await fs.truncate(file, size);
      runs.push(await uploadOnce(file, size, server.endpoint, path.join(work, 'state.json'), chunkSize));
      await fs.rm(file);
      // Free the server's disk before the next size.
      for (const name of await fs.readdir(server.storageDir)) {
        if (!name.startsWith('.')) await fs.rm(path.join(server.storageDir, name), { force: true, recursive: true });
      }
    }
  } finally {
    await server.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
  const base = runs[0]?.peakRss ?? 0;
  process.stdout.write(`CLI peak RSS (VmHWM), chunk size ${chunkSize}, to ${server.url} on 127.0.0.1:\n`);
  for (const run of runs) {
    const rate = run.size / MiB / run.seconds;
    process.stdout.write(
      `  ${formatBytes(run.size).padStart(9)}  peak ${formatBytes(run.peakRss).padStart(9)}  (+${formatBytes(Math.max(0, run.peakRss - base))} over 1 MiB)  ${run.seconds.toFixed(1)} s  ${rate.toFixed(0)} MiB/s\n`,
    );
  }
}

await main();
