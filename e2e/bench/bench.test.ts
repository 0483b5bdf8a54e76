import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/start-command.js';

/**
 * `npm run bench` end to end at its smallest, so the benchmark cannot rot: the real servers
 * (A as `npm start` runs it, the plain @tus/server reference twice, the ceiling), the small and
 * head-one workloads, and the JSON it writes. Not a performance assertion: the machine is shared.
 */

/** About 20 s on an idle machine; the bound leaves room for a machine busy with other suites. */
const BENCH_TIMEOUT_MS = 100_000;

type Summary = { workload: string; metric: string; ours: number | null; reference: number | null; ceiling: number | null; referenceNoise: number | null };
type Output = { summary: Summary[]; runs: Array<{ server: string; workload: string; vmHwmMiB: number; serverCpuSec: number; detail: Record<string, unknown> }> };

function runBench(args: readonly string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'e2e/bench/main.ts', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output = (output + text).slice(-20_000)));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output = (output + text).slice(-20_000)));
  // SIGTERM lets the bench kill its servers by PID; SIGKILL if it does not go.
  const timer = setTimeout(() => {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  }, BENCH_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

describe('npm run bench', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs --tiny small and head-one against A, B, B\' and C and writes a row per figure', { timeout: BENCH_TIMEOUT_MS + 15_000 }, async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-test-'));
    dirs.push(dir);
    const out = path.join(dir, 'bench.json');
    const result = await runBench(['--tiny', '--workloads', 'small,head-one', '--rounds', '1', '--settle', '0', '--quiet-wait', '0', '--out', out, '--storage-dir', dir]);
    expect(result, result.output).toMatchObject({ code: 0, signal: null });
    expect(result.output).toMatch(/\| workload +\| +figure +\| +ours \| +reference \| +ours ÷ reference \| +ceiling \| +ours ÷ ceiling \| +B' ÷ B \|/);
    expect(result.output).toMatch(/^noise: the reference against itself/m);

    const json = JSON.parse(await fs.readFile(out, 'utf8')) as Output;
    expect(json.runs.map((r) => `${r.workload} ${r.server}`)).toEqual(['small A-file', 'small B-file', "small B'-file", 'small C-file', 'head-one A-file', 'head-one B-file', "head-one B'-file", 'head-one C-file']);
    for (const run of json.runs) {
      expect(run.vmHwmMiB, `${run.server} ${run.workload}`).toBeGreaterThan(10);
      expect(run.serverCpuSec, `${run.server} ${run.workload}`).toBeGreaterThan(0);
    }
    const row = (workload: string, metric: string) => json.summary.find((r) => r.workload === workload && r.metric === metric);
    for (const [workload, metric] of [['small', 'uploadsPerSec'], ['small', 'cpuMsPerOp'], ['head-one', 'reqPerSec'], ['head-one', 'p99Ms'], ['head-one', 'cpuMsPerOp']] as const) {
      const r = row(workload, metric);
      expect(r, `${workload} ${metric}`).toBeDefined();
      for (const figure of [r!.ours, r!.reference, r!.ceiling, r!.referenceNoise]) expect(figure, `${workload} ${metric}`).toBeGreaterThan(0);
    }
    // Only this server processes uploads: the time until its queue drained is measured, every upload processed.
    expect(row('small', 'drainMs')?.ours).toBeGreaterThanOrEqual(0);
    expect(json.runs.find((r) => r.server === 'A-file' && r.workload === 'small')?.detail.processed).toEqual({ done: 50 });
    // The per-run storage directories are gone.
    expect((await fs.readdir(dir)).filter((name) => name.startsWith('tus-bench-'))).toEqual([]);
  });
});
