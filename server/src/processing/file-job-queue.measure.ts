/**
 * Throughput of the embedded queue (not a test; run with `npx tsx`): 2,000 enqueues from 32
 * concurrent callers, then running and completing them with no-op handlers. Prints jobs/s and
 * CPU per job (all threads: the file operations run on libuv's pool). Three rounds.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createFileJobQueue } from './file-job-queue.js';

const JOBS = 2000;
const CALLERS = 32;
const policy = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000 };
const microsPerJob = (cpu: NodeJS.CpuUsage) => ((cpu.user + cpu.system) / JOBS).toFixed(0);

async function round(): Promise<void> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'queue-measure-'));
  const queue = createFileJobQueue({
    directory,
    logger: pino({ level: 'silent' }),
    policies: { 'process-upload': policy, 'deliver-hook': policy },
    concurrency: { 'process-upload': 4, 'deliver-hook': 8 },
  });
  let next = 0;
  const start = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (next < JOBS) {
        const i = next++;
        await queue.enqueue({ key: `process:${i}`, group: `process:${i}`, kind: 'process-upload', payload: { id: String(i) } });
      }
    }),
  );
  const t1 = performance.now();
  const enqueued = process.cpuUsage(start);
  queue.start({ run: async () => undefined, dead: async () => undefined });
  await queue.idle();
  const t2 = performance.now();
  const completed = process.cpuUsage(start);
  console.log(
    `enqueue: ${(JOBS / ((t1 - t0) / 1000)).toFixed(0)} jobs/s, ${microsPerJob(enqueued)} µs CPU/job; ` +
      `run + complete: ${(JOBS / ((t2 - t1) / 1000)).toFixed(0)} jobs/s, ${microsPerJob({ user: completed.user - enqueued.user, system: completed.system - enqueued.system })} µs CPU/job`,
  );
  await queue.stop();
  await fs.rm(directory, { recursive: true, force: true });
}

async function main(): Promise<void> {
  for (let i = 0; i < 3; i += 1) await round();
}

// The queue's timers are unref'd: keep the process alive until the rounds are over.
const keepAlive = setInterval(() => undefined, 1000);
main().then(
  () => clearInterval(keepAlive),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
