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

  /** Every record in the journal, file by file, in order. */
  const journal = async () => {
    const files = await list('journal');
    const records: { file: string; record: Record<string, unknown> }[] = [];
    for (const file of files) {
      for (const line of (await fs.readFile(path.join(directory, 'journal', file), 'utf8')).split('\n').filter(Boolean)) {
        records.push({ file, record: JSON.parse(line) as Record<string, unknown> });
      }
    }
    return { files, records };
  };

  it('writes the changes made in one window as one batch (group commit), and finishes jobs in batches too, all in one log file', async () => {
    const queue = open(contractOptions({ maxAttempts: 1, concurrency: 8 }));
    const keys = Array.from({ length: 20 }, (_, i) => `process:${i}`);
    expect(await Promise.all(keys.map((key) => queue.enqueue(newJob(key, key, { id: key }))))).toEqual(keys.map(() => true));
    let { files, records } = await journal();
    expect(files).toEqual(['000000000001.log.jsonl']);
    expect(records.map((r) => (r.record.job as Job).key)).toEqual(keys);
    expect(records[0]!.record.job).toMatchObject({ key: 'process:0', group: 'process:0', kind: 'process-upload', payload: { id: 'process:0' }, attempts: 0, lastError: null });

    queue.start({
      run: async (job) => {
        if (job.key === 'process:13') throw new Error('broken');
      },
      dead: async () => undefined,
    });
    await within(queue.idle(), 'the queue to drain');
    ({ files, records } = await journal());
    // 20 completions, at most 8 running at once: appended to the same log, no file per batch.
    expect(files).toEqual(['000000000001.log.jsonl']);
    expect(records.filter((r) => r.record.t === 'done')).toHaveLength(19);
    expect(records.filter((r) => r.record.t === 'dead').map((r) => r.record.job)).toEqual([expect.objectContaining({ key: 'process:13', attempts: 1, lastError: 'broken' })]);
    // Nothing is left in the temporary directory.
    expect(await list('tmp')).toEqual([]);
  });

  it('keys stay inside the journal: nothing is named after them', async () => {
    const queue = open();
    await queue.enqueue(newJob('../../escape', 'g'));
    await queue.enqueue(newJob('..', 'h'));
    expect((await list('journal')).every((name) => /^\d{12}\.log\.jsonl$/.test(name))).toBe(true);
    expect(await fs.readdir(path.dirname(directory))).not.toContain('escape.json');
    expect(await queue.status('../../escape')).toBe('pending');
  });

  it('a retried job is journaled again with its attempt count and error', async () => {
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
    const retried = async () => (await journal()).records.map((r) => r.record.job as (Job & { notBefore?: number }) | undefined).find((job) => job?.attempts === 1);
    for (let i = 0; i < 200 && !(await retried()); i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const job = await retried();
    expect(job).toMatchObject({ key: 'slow-retry', attempts: 1, lastError: 'try later' });
    expect(job?.notBefore).toBeUndefined();
    expect(ran).toBe(1);
  });

  it('an unreadable journal line is logged and skipped; the other jobs still run', async () => {
    const first = open();
    await first.enqueue(newJob('fine'));
    await first.stop();
    await fs.writeFile(path.join(directory, 'journal', '000000000009.batch.jsonl'), '{"t":"job","job":{"key":"torn","gro');

    const second = open();
    const ran: string[] = [];
    second.start({ run: async (job) => void ran.push(job.key), dead: async () => undefined });
    await within(second.idle(), 'the readable job to run');
    expect(ran).toEqual(['fine']);
    expect(logLines.some((line) => line.msg === 'unreadable record left in the queue journal' && line.file === '000000000009.batch.jsonl')).toBe(true);
  });

  it('a batch written to tmp/ but never renamed (a crash mid-write) is not a job', async () => {
    const first = open();
    await first.enqueue(newJob('other'));
    await first.stop();
    const ghost = { t: 'job', job: { ...newJob('ghost'), seq: 1, enqueuedAt: '', attempts: 0, lastError: null } };
    await fs.writeFile(path.join(directory, 'tmp', '000000000002.batch.jsonl.123456'), JSON.stringify(ghost) + '\n');

    const second = open();
    expect(await second.status('ghost')).toBeUndefined();
    expect(await second.enqueue(newJob('ghost'))).toBe(true);
    const ran: string[] = [];
    second.start({ run: async (job) => void ran.push(job.key), dead: async () => undefined });
    await within(second.idle(), 'the queue to drain');
    expect(ran.sort()).toEqual(['ghost', 'other']);
  });

  it('a snapshot replaces the older journal files and keeps every state across a restart', async () => {
    const options = { ...contractOptions({ maxAttempts: 1 }), snapshotAfter: 10 };
    const first = createFileJobQueue({ directory, logger: logger(), ...options });
    queues.push(first);
    first.start({
      run: async (job) => {
        if (job.key.startsWith('bad')) throw new Error('bad');
      },
      dead: async () => undefined,
    });
    for (let i = 0; i < 30; i += 1) await first.enqueue(newJob(i % 10 === 0 ? `bad-${i}` : `ok-${i}`));
    await within(first.idle(), 'the queue to drain');
    await first.stop();
    const { files } = await journal();
    expect(files.some((name) => name.endsWith('.snapshot.jsonl'))).toBe(true);
    expect(files.length).toBeLessThan(20);
    // After a snapshot the log starts anew, numbered after it: nothing older is left.
    const snapshotAt = files.findIndex((name) => name.endsWith('.snapshot.jsonl'));
    expect(files.slice(snapshotAt + 1).every((name) => name.endsWith('.log.jsonl'))).toBe(true);
    expect(snapshotAt).toBe(0);

    const second = open();
    await second.enqueue(newJob('new'));
    expect(await second.status('ok-1')).toBe('done');
    expect(await second.status('bad-10')).toBe('dead');
    expect(await second.status('new')).toBe('pending');
    for (const key of ['ok-29', 'bad-20']) expect(await second.enqueue(newJob(key))).toBe(false);
  });

  it('enqueues and completions over many group-commit windows create no file: one log, appended to, replayed after a restart', async () => {
    const first = open(contractOptions({ maxAttempts: 1, concurrency: 4 }));
    // One window each: every enqueue waits for the one before it.
    for (let i = 0; i < 30; i += 1) expect(await first.enqueue(newJob(`one-${i}`))).toBe(true);
    const before = { journal: await list('journal'), tmp: await list('tmp') };
    expect(before).toEqual({ journal: ['000000000001.log.jsonl'], tmp: [] });
    first.start({ run: async () => undefined, dead: async () => undefined });
    for (let i = 0; i < 30; i += 1) expect(await first.enqueue(newJob(`two-${i}`))).toBe(true);
    await within(first.idle(), 'the queue to drain');
    await first.stop();
    expect({ journal: await list('journal'), tmp: await list('tmp') }).toEqual(before);
    const { records } = await journal();
    expect(records.filter((r) => r.record.t === 'job')).toHaveLength(60);
    expect(records.filter((r) => r.record.t === 'done')).toHaveLength(60);

    // The next process replays the log, then appends to a log of its own.
    const second = open();
    expect(await second.status('one-0')).toBe('done');
    expect(await second.status('two-29')).toBe('done');
    expect(await second.enqueue(newJob('one-0'))).toBe(false);
    expect(await second.enqueue(newJob('three'))).toBe(true);
    expect(await list('journal')).toEqual(['000000000001.log.jsonl', '000000000002.log.jsonl']);
    expect(await fs.readFile(path.join(directory, 'journal', '000000000002.log.jsonl'), 'utf8')).toContain('"three"');
  });

  it.each([
    ['half a JSON record', (line: string) => line.slice(0, line.length - 12)],
    ['a whole record without its newline', (line: string) => line],
  ])('a log whose last line is torn (%s) is replayed without it, silently, and never appended to again', async (_name, torn) => {
    await fs.mkdir(path.join(directory, 'journal'), { recursive: true });
    const job = (key: string) => JSON.stringify({ t: 'job', job: { ...newJob(key), seq: 1, enqueuedAt: '', attempts: 0, lastError: null } });
    const tornLog = path.join(directory, 'journal', '000000000003.log.jsonl');
    const tornText = job('before-1') + '\n' + job('before-2') + '\n' + torn(job('torn'));
    await fs.writeFile(tornLog, tornText);

    const queue = open();
    const ran: string[] = [];
    queue.start({ run: async (j) => void ran.push(j.key), dead: async () => undefined });
    await within(queue.idle(), 'the jobs before the torn line to run');
    expect(ran).toEqual(['before-1', 'before-2']);
    expect(await queue.status('torn')).toBeUndefined();
    expect(logLines.filter((line) => (line.level as number) >= 40)).toEqual([]);
    // The completions went to a new log; the torn one is as it was.
    expect(await list('journal')).toEqual(['000000000003.log.jsonl', '000000000004.log.jsonl']);
    expect(await fs.readFile(tornLog, 'utf8')).toBe(tornText);
    expect(await queue.enqueue(newJob('torn'))).toBe(true);
  });

  it('reads a journal of one file per batch (the layout before the log) and appends after it', async () => {
    await fs.mkdir(path.join(directory, 'journal'), { recursive: true });
    const job = (key: string, seq: number) => JSON.stringify({ t: 'job', job: { ...newJob(key, 'g'), seq, enqueuedAt: '', attempts: 0, lastError: null } }) + '\n';
    await fs.writeFile(path.join(directory, 'journal', '000000000001.batch.jsonl'), job('old-1', 1) + job('old-2', 2) + job('old-3', 3));
    await fs.writeFile(path.join(directory, 'journal', '000000000002.batch.jsonl'), JSON.stringify({ t: 'done', key: 'old-1', kind: 'process-upload', at: Date.now() }) + '\n');
    await fs.writeFile(path.join(directory, 'journal', '000000000003.batch.jsonl'), job('old-4', 4));

    const queue = open();
    expect(await queue.status('old-1')).toBe('done');
    expect(await queue.enqueue(newJob('new', 'g'))).toBe(true);
    const ran: string[] = [];
    queue.start({ run: async (j) => void ran.push(j.key), dead: async () => undefined });
    await within(queue.idle(), 'the old jobs to run');
    expect(ran).toEqual(['old-2', 'old-3', 'old-4', 'new']);
    expect((await list('journal')).at(-1)).toBe('000000000004.log.jsonl');
  });

  it('a batch the disk refuses fails its callers and leaves no file behind; the log is replayed without it', async () => {
    const devFull = await fs.access('/dev/full').then(() => true, () => false);
    if (!devFull) return;
    const queue = open();
    expect(await queue.status('x')).toBeUndefined();
    // The log this queue opens first is /dev/full: every write fails with a real ENOSPC.
    const log = path.join(directory, 'journal', '000000000001.log.jsonl');
    await fs.symlink('/dev/full', log);
    await expect(queue.enqueue(newJob('refused-1'))).rejects.toMatchObject({ code: 'ENOSPC' });
    // The next batch tries the same handle again: still no new file per batch.
    await expect(queue.enqueue(newJob('refused-2'))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(await list('journal')).toEqual(['000000000001.log.jsonl']);
    expect(await queue.status('refused-1')).toBeUndefined();
    await queue.stop();

    await fs.rm(log);
    const second = open();
    expect(await second.status('refused-1')).toBeUndefined();
    expect(await second.enqueue(newJob('refused-1'))).toBe(true);
  });

  it('files older than the latest snapshot (a crash before they were removed) are ignored', async () => {
    await fs.mkdir(path.join(directory, 'journal'), { recursive: true });
    const job = (key: string) => JSON.stringify({ t: 'job', job: { ...newJob(key), seq: 1, enqueuedAt: '', attempts: 0, lastError: null } }) + '\n';
    await fs.writeFile(path.join(directory, 'journal', '000000000001.batch.jsonl'), job('stale') + job('kept'));
    await fs.writeFile(path.join(directory, 'journal', '000000000002.snapshot.jsonl'), job('kept') + JSON.stringify({ t: 'done', key: 'finished' }) + '\n');
    await fs.writeFile(path.join(directory, 'journal', '000000000003.batch.jsonl'), job('later'));
    const queue = open();
    expect(await queue.status('stale')).toBeUndefined();
    expect(await queue.status('kept')).toBe('pending');
    expect(await queue.status('finished')).toBe('done');
    expect(await queue.status('later')).toBe('pending');
  });

  it('reads a queue left in the one-file-per-job layout, runs its jobs and keeps its finished keys', async () => {
    const write = async (state: string, key: string, job: Record<string, unknown>) => {
      await fs.mkdir(path.join(directory, state), { recursive: true });
      await fs.writeFile(path.join(directory, state, `${encodeURIComponent(key).replace(/\./g, '%2E')}.json`), JSON.stringify(job));
    };
    const old = (key: string) => ({ ...newJob(key), seq: 1, enqueuedAt: '', attempts: 0, lastError: null });
    await write('pending', 'process:a.b', old('process:a.b'));
    await write('done', 'process:done', old('process:done'));
    await write('dead', 'process:dead', old('process:dead'));

    const queue = open();
    const ran: string[] = [];
    queue.start({ run: async (job) => void ran.push(job.key), dead: async () => undefined });
    await within(queue.idle(), 'the old pending job to run');
    expect(ran).toEqual(['process:a.b']);
    expect(await queue.status('process:done')).toBe('done');
    expect(await queue.status('process:dead')).toBe('dead');
    expect(await queue.enqueue(newJob('process:done'))).toBe(false);
    expect((await fs.readdir(directory)).sort()).toEqual(['journal', 'tmp']);
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

  describe('JOB_RETENTION on disk', () => {
    const hookJob = (key: string) => newJob(key, `group-${key}`, { request: { headers: { 'tus-resumable': '1.0.0' } } }, 'deliver-hook');
    const journalText = async () => (await journal()).records.map(({ record }) => JSON.stringify(record)).join('\n');
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    it('a delivered hook job leaves the journal once past its retention, while the queue runs', async () => {
      // Long enough that the first look below comes before the prune even on a busy machine.
      const queue = open(contractOptions({ retentionMs: 1_500 }));
      queue.start({ run: async () => undefined, dead: async () => undefined });
      await queue.enqueue(hookJob('hook:post-finish:a'));
      await queue.enqueue(newJob('upload-a'));
      await within(queue.idle(), 'the jobs to run');
      expect(await journalText()).toContain('hook:post-finish:a');
      // The prune timer runs every retention (at most hourly) and compacts what it forgot.
      const deadline = Date.now() + 10_000;
      while ((await journalText()).includes('hook:post-finish:a') && Date.now() < deadline) await sleep(25);
      const text = await journalText();
      expect(text).not.toContain('hook:post-finish:a');
      expect(text).toContain('upload-a');
    });

    it('hook jobs that outlived their retention while the server was down are pruned at start', async () => {
      const first = open(contractOptions());
      first.start({ run: async () => undefined, dead: async () => undefined });
      await first.enqueue(hookJob('hook:post-create:b'));
      await within(first.idle(), 'the job to run');
      await first.stop();
      await sleep(150);
      const second = open(contractOptions({ retentionMs: 100 }));
      expect(await second.status('hook:post-create:b')).toBeUndefined();
      expect(await journalText()).not.toContain('hook:post-create:b');
    });

    it('journal files are readable by the server only (0600), their directories 0700', async () => {
      const queue = open();
      await queue.enqueue(hookJob('hook:post-create:c'));
      for (const file of await list('journal')) expect((await fs.stat(path.join(directory, 'journal', file))).mode & 0o777).toBe(0o600);
      for (const sub of ['journal', 'tmp']) expect((await fs.stat(path.join(directory, sub))).mode & 0o777).toBe(0o700);
    });
  });
});
