import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BOOKKEEPING_RETRY_MS, createFileJobQueue } from './file-job-queue.js';
import { contractOptions, newJob } from './job-queue.contract.js';
import type { JobQueue } from './job-queue.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// When the journal cannot be written (a full disk), a job's outcome is lost but the job is
// not: it stays pending. It must not run again at once, in a loop as fast as the CPU allows,
// for as long as the disk stays full.
describe('file queue whose journal cannot be written', () => {
  let directory: string | undefined;
  let queue: JobQueue | undefined;
  afterEach(async () => {
    await queue?.stop();
    if (directory) await fs.rm(directory, { recursive: true, force: true });
    queue = undefined;
    directory = undefined;
  });

  it('runs a job whose outcome could not be recorded again only after a pause', async () => {
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-queue-full-'));
    // A snapshot after every batch: the enqueue's log is closed by it, the completion opens the next one (000000000003).
    const q = createFileJobQueue({ directory, logger: pino({ level: 'silent' }), snapshotAfter: 1, ...contractOptions({ maxAttempts: 3, baseDelayMs: 20 }) });
    queue = q;
    let runs = 0;
    let journalBroken = false;
    const devFull = await fs.access('/dev/full').then(() => true, () => false);
    q.start({
      run: async () => {
        runs += 1;
        if (journalBroken) return;
        // The job is in the journal; from now on nothing more can be written there: the next
        // log is /dev/full (every write a real ENOSPC), or else the journal is no directory.
        const journal = path.join(directory ?? '', 'journal');
        if (devFull) await fs.symlink('/dev/full', path.join(journal, '000000000003.log.jsonl'));
        else {
          await fs.rm(journal, { recursive: true, force: true });
          await fs.writeFile(journal, '');
        }
        journalBroken = true;
      },
      dead: async () => undefined,
    });
    expect(await q.enqueue(newJob('upload-1'))).toBe(true);
    await sleep(1_000);
    // Once, and then it waits BOOKKEEPING_RETRY_MS (not thousands of runs in that second).
    expect(BOOKKEEPING_RETRY_MS).toBeGreaterThan(1_000);
    expect(runs).toBe(1);
    expect(await q.status('upload-1')).toBe('pending');
  });

  it('a run that fails for want of space waits for it without using up an attempt (a disk full for a while ends no good upload failed)', async () => {
    const devFull = await fs.access('/dev/full').then(() => true, () => false);
    if (!devFull) return;
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-queue-full-'));
    const q = createFileJobQueue({ directory, logger: pino({ level: 'silent' }), storageFullRetryMs: 20, ...contractOptions({ maxAttempts: 3, baseDelayMs: 20 }) });
    queue = q;
    let runs = 0;
    let dead = 0;
    q.start({
      run: async () => {
        runs += 1;
        // Five runs in a row on a full disk (more than maxAttempts): /dev/full answers every write with a real ENOSPC.
        if (runs <= 5) await fs.writeFile('/dev/full', 'a status record');
      },
      dead: async () => {
        dead += 1;
      },
    });
    expect(await q.enqueue(newJob('upload-2'))).toBe(true);
    for (let i = 0; i < 100 && (await q.status('upload-2')) === 'pending'; i += 1) await sleep(20);
    expect(await q.status('upload-2')).toBe('done');
    expect(runs).toBe(6);
    expect(dead).toBe(0);
  });
});
