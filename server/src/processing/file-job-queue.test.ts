import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileJobQueue } from './file-job-queue.js';
import { contractOptions, jobQueueContract, newJob, within, type ContractQueueOptions } from './job-queue.contract.js';
import type { Job, JobQueue } from './job-queue.js';

const silent = pino({ level: 'silent' });

jobQueueContract('file queue', async () => {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-queue-contract-'));
  return {
    open: (options: ContractQueueOptions) => createFileJobQueue({ directory, logger: silent, ...options }),
    destroy: () => fs.rm(directory, { recursive: true, force: true }),
  };
});

/** What only the file queue promises: its layout on disk and how it treats damaged files. */
describe('file queue on disk', () => {
  let directory: string;
  let queues: JobQueue[];
  let logLines: Record<string, unknown>[];

  const logger = () =>
    pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      }),
    );

  const open = (options = contractOptions()) => {
    const queue = createFileJobQueue({ directory, logger: logger(), ...options });
    queues.push(queue);
    return queue;
  };
  const list = async (state: string) => (await fs.readdir(path.join(directory, state)).catch(() => [] as string[])).sort();

  beforeEach(async () => {
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-file-queue-'));
    queues = [];
    logLines = [];
  });
  afterEach(async () => {
    await Promise.all(queues.map((q) => within(q.stop(), 'a queue to stop', 2_000).catch(() => undefined)));
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('keeps one JSON file per job and moves it from pending/ to done/ or dead/', async () => {
    const queue = open(contractOptions({ maxAttempts: 1 }));
    await queue.enqueue(newJob('process:abc', 'process:abc', { id: 'abc' }));
    await queue.enqueue(newJob('process:bad', 'process:bad', { id: 'bad' }));
    expect(await list('pending')).toEqual(['process%3Aabc.json', 'process%3Abad.json']);
    const pending = JSON.parse(await fs.readFile(path.join(directory, 'pending', 'process%3Aabc.json'), 'utf8')) as Job;
    expect(pending).toMatchObject({ key: 'process:abc', group: 'process:abc', kind: 'process-upload', payload: { id: 'abc' }, attempts: 0, lastError: null });

    queue.start({
      run: async (job) => {
        if (job.key === 'process:bad') throw new Error('broken');
      },
      dead: async () => undefined,
    });
    await within(queue.idle(), 'the queue to drain');
    expect(await list('pending')).toEqual([]);
    expect(await list('done')).toEqual(['process%3Aabc.json']);
    expect(await list('dead')).toEqual(['process%3Abad.json']);
    const dead = JSON.parse(await fs.readFile(path.join(directory, 'dead', 'process%3Abad.json'), 'utf8')) as Job;
    expect(dead).toMatchObject({ key: 'process:bad', attempts: 1, lastError: 'broken' });
    // Nothing is left in the temporary directory.
    expect(await list('tmp')).toEqual([]);
  });

  it('keys cannot escape the queue directory', async () => {
    const queue = open();
    await queue.enqueue(newJob('../../escape', 'g'));
    await queue.enqueue(newJob('..', 'h'));
    expect(await list('pending')).toEqual(['%2E%2E%2F%2E%2E%2Fescape.json', '%2E%2E.json']);
    expect(await fs.readdir(path.dirname(directory))).not.toContain('escape.json');
  });

  it('a retried job is rewritten in pending/ with its attempt count and error', async () => {
    const queue = open(contractOptions({ maxAttempts: 5, baseDelayMs: 60_000 }));
    let ran = 0;
    queue.start({
      run: async () => {
        ran += 1;
        throw new Error('try later');
      },
      dead: async () => undefined,
    });
    await queue.enqueue(newJob('slow-retry'));
    const file = path.join(directory, 'pending', 'slow-retry.json');
    for (let i = 0; i < 200; i += 1) {
      const job = JSON.parse(await fs.readFile(file, 'utf8')) as Job;
      if (job.attempts === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const job = JSON.parse(await fs.readFile(file, 'utf8')) as Job & { notBefore?: number };
    expect(job).toMatchObject({ attempts: 1, lastError: 'try later' });
    expect(job.notBefore).toBeUndefined();
    expect(ran).toBe(1);
  });

  it('an unreadable job file is logged and skipped; the other jobs still run', async () => {
    const first = open();
    await first.enqueue(newJob('fine'));
    await first.stop();
    await fs.writeFile(path.join(directory, 'pending', 'torn.json'), '{"key":"torn","gro');

    const second = open();
    const ran: string[] = [];
    second.start({ run: async (job) => void ran.push(job.key), dead: async () => undefined });
    await within(second.idle(), 'the readable job to run');
    expect(ran).toEqual(['fine']);
    expect(logLines.some((line) => line.msg === 'unreadable job file left in the queue' && line.file === 'torn.json')).toBe(true);
  });

  it('a job written to tmp/ but never linked (a crash mid-enqueue) is not a job', async () => {
    const first = open();
    await first.enqueue(newJob('other'));
    await first.stop();
    await fs.writeFile(path.join(directory, 'tmp', 'ghost.json.123456'), JSON.stringify({ ...newJob('ghost'), seq: 1, enqueuedAt: '', attempts: 0, lastError: null }));

    const second = open();
    expect(await second.status('ghost')).toBeUndefined();
    expect(await second.enqueue(newJob('ghost'))).toBe(true);
    const ran: string[] = [];
    second.start({ run: async (job) => void ran.push(job.key), dead: async () => undefined });
    await within(second.idle(), 'the queue to drain');
    expect(ran.sort()).toEqual(['ghost', 'other']);
  });

  it('orders jobs after a restart after the ones enqueued before it (seq is monotonic)', async () => {
    const first = open();
    await first.enqueue(newJob('before', 'g'));
    await first.stop();
    const second = open();
    await second.enqueue(newJob('after', 'g'));
    const ran: string[] = [];
    second.start({ run: async (job) => void ran.push(job.key), dead: async () => undefined });
    await within(second.idle(), 'the group to drain');
    expect(ran).toEqual(['before', 'after']);
  });
});
