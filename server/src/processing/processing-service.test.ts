import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Upload } from '@tus/utils';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import type { HookDispatcher } from '../hooks/hook-dispatcher.js';
import type { HookEvent, NotifyingHookType } from '../hooks/types.js';
import { createFileStorage } from '../storage/file-storage.js';
import { createMemoryLocker } from '../uploads/memory-locker.js';
import type { ByteRange, UploadStorage } from '../storage/index.js';
import { createFileJobQueue } from './file-job-queue.js';
import { createFileStatusStore } from './file-status-store.js';
import { within } from './job-queue.contract.js';
import type { Job, JobQueue, NewJob, ProcessUploadPayload } from './job-queue.js';
import { createProcessing, processingKey } from './processing-service.js';
import { detectType } from './processors/detect-type.js';
import { sha256 } from './processors/sha256.js';
import type { Processor } from './processors/types.js';
import { verifySize } from './processors/verify-size.js';
import type { StatusRecord, StatusStore } from './status-store.js';

const silent = pino({ level: 'silent' });
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const mp4Header = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom', 'latin1'), Buffer.from([0, 0, 2, 0]), Buffer.from('isomiso2', 'latin1')]);
const MP4 = Buffer.concat([mp4Header, Buffer.alloc(5000, 7)]);
const EXE = Buffer.concat([Buffer.from('MZ', 'latin1'), Buffer.alloc(5000, 9)]);

type Notified = { type: NotifyingHookType; event: HookEvent; key: string };

/** The dispatcher as processing uses it: only notify, recorded. */
function recordingHooks(): { hooks: HookDispatcher; notified: Notified[] } {
  const notified: Notified[] = [];
  const hooks = {
    notify: async (type: NotifyingHookType, event: HookEvent, key: string) => {
      notified.push({ type, event, key });
    },
    runBlocking: async () => ({}),
    flush: async () => undefined,
    deliver: async () => undefined,
    hasTargets: () => false,
  } as unknown as HookDispatcher;
  return { hooks, notified };
}

/** Wraps a processor to count its runs and optionally fail the first `failures` of them. */
function counted<R>(processor: Processor<R>, { failures = 0, message = 'transient failure' } = {}) {
  const calls: { previous: Readonly<Record<string, unknown>> }[] = [];
  const wrapped: Processor<R> = {
    ...processor,
    async run(input) {
      calls.push({ previous: input.previous });
      if (calls.length <= failures) throw new Error(message);
      return processor.run(input);
    },
  };
  return { processor: wrapped, calls };
}

const jobFor = (id: string, attempts = 0): Job => ({
  key: processingKey(id),
  group: processingKey(id),
  kind: 'process-upload',
  payload: { id },
  seq: 1,
  enqueuedAt: new Date().toISOString(),
  attempts,
  lastError: null,
});

describe('processing service', () => {
  let dir: string;
  let storage: UploadStorage;
  let statuses: StatusStore;
  let queue: JobQueue;
  let hooks: ReturnType<typeof recordingHooks>;
  /** The upload lock the requests would take: a rejected upload is deleted holding it. */
  let locker: ReturnType<typeof createMemoryLocker>;

  beforeEach(async () => {
    locker = createMemoryLocker({ acquireTimeoutMs: 5_000 });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-processing-'));
    storage = await createFileStorage({ directory: dir, uploadExpiryMs: 0 });
    statuses = createFileStatusStore(path.join(dir, '.status'));
    queue = createFileJobQueue({
      directory: path.join(dir, '.queue'),
      logger: silent,
      concurrency: { 'process-upload': 2, 'deliver-hook': 2 },
      policies: {
        'process-upload': { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
        'deliver-hook': { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
      },
    });
    hooks = recordingHooks();
  });
  afterEach(async () => {
    await within(queue.stop(), 'the queue to stop').catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  });

  const standard = (allowedTypes: string[] = []): Processor[] => [
    verifySize(async (id) => {
      const upload = await storage.getUpload(id);
      return { offset: upload.offset, size: upload.size };
    }),
    sha256,
    detectType(allowedTypes),
  ];

  function service(processors: readonly Processor[], deleteRejected = false) {
    return createProcessing({ storage, queue, statuses, processors, hooks: hooks.hooks, logger: silent, deleteRejected, locker });
  }

  /** An upload in storage of `content`, with `written` of its bytes stored (all by default). */
  async function putUpload(id: string, content: Buffer, { metadata = {}, written = content.length }: { metadata?: Record<string, string>; written?: number } = {}) {
    await storage.datastore.create(new Upload({ id, size: content.length, offset: 0, metadata }));
    if (written > 0) await storage.datastore.write(Readable.from([content.subarray(0, written)]), id, 0);
  }

  const postProcess = () => hooks.notified.filter((n) => n.type === 'post-process');

  it('runs the processors in order and records each result, then done', async () => {
    await putUpload('u1', MP4, { metadata: { filename: 'a.mp4', filetype: 'video/mp4' } });
    await service(standard(['video/*'])).run(jobFor('u1'));
    const status = await statuses.get('u1');
    expect(status).toMatchObject({ id: 'u1', state: 'done', error: null });
    expect(Object.keys(status!.processors)).toEqual(['size', 'sha256', 'type']);
    expect(status!.processors.size).toMatchObject({ ok: true, result: { declared: MP4.length, stored: MP4.length } });
    expect(status!.processors.sha256).toMatchObject({ ok: true, result: { sha256: sha(MP4), bytes: MP4.length } });
    expect(status!.processors.type).toMatchObject({ ok: true, result: { detected: 'video/mp4', declared: 'video/mp4', matchesDeclared: true } });
    // post-finish is made sure of, and post-process announces the outcome with every result.
    expect(hooks.notified.map((n) => [n.type, n.key])).toEqual([
      ['post-finish', 'post-finish:u1'],
      ['post-process', 'post-process:u1'],
    ]);
    expect(postProcess()[0]!.event.processing).toEqual({
      state: 'done',
      error: null,
      results: {
        size: { declared: MP4.length, stored: MP4.length },
        sha256: { sha256: sha(MP4), bytes: MP4.length },
        type: { detected: 'video/mp4', declared: 'video/mp4', matchesDeclared: true },
      },
    });
    expect(postProcess()[0]!.event.upload).toMatchObject({ id: 'u1', size: MP4.length, offset: MP4.length, metadata: { filename: 'a.mp4', filetype: 'video/mp4' } });
  });

  it('records quick steps (a digest streamed in, not wanted) with the end state: one write, not one per step; a slow step has them written first', async () => {
    const content = Buffer.from('hello world');
    await putUpload('u1', content);
    const writes: StatusRecord[] = [];
    const counting: StatusStore = { ...statuses, update: async (id, change) => {
      const written = await statuses.update(id, change);
      writes.push(written);
      return written;
    } };
    const streamedJob = (id: string): Job => ({ ...jobFor(id), payload: { id, streamed: { sha256: sha(content), bytes: content.length, head: content.toString('base64') } } });
    const unwanted = counted<null>({ name: 'poster', wants: () => false, run: async () => ({ result: null }) });
    const run = (processors: Processor[], job: Job) =>
      createProcessing({ storage, queue, statuses: counting, processors, hooks: hooks.hooks, logger: silent, deleteRejected: false, locker }).run(job);
    await run([...standard(), unwanted.processor], streamedJob('u1'));
    // Done with every result, in one write.
    expect(writes.map((w) => [w.state, Object.keys(w.processors)])).toEqual([['done', ['size', 'sha256', 'type', 'poster']]]);
    expect(unwanted.calls).toHaveLength(0);
    expect((await statuses.get('u1'))?.processors.poster).toMatchObject({ ok: true, result: { skipped: 'not wanted' } });

    // A step that is not quick finds the results before it recorded when it starts.
    await putUpload('u2', content);
    writes.length = 0;
    let seenWhileRunning: string[] = [];
    const slow: Processor<null> = { name: 'transcode', run: async () => {
      seenWhileRunning = Object.keys((await statuses.get('u2'))?.processors ?? {});
      return { result: null };
    } };
    await run([...standard(), slow], streamedJob('u2'));
    expect(seenWhileRunning).toEqual(['size', 'sha256', 'type']);
    // The quick results before it, its own, then the end state.
    expect(writes.map((w) => w.state)).toEqual(['processing', 'processing', 'done']);
  });

  it('keeps a streamed upload\'s first bytes in memory, not in its job; a job run elsewhere (or after a restart) reads them', async () => {
    await putUpload('u1', MP4);
    const enqueued: NewJob[] = [];
    const capturing: JobQueue = {
      ...queue,
      enqueue: async (job) => {
        enqueued.push(job);
        return true;
      },
    };
    let reads = 0;
    const counting = new Proxy(storage, {
      get: (target, property) => (property === 'read' ? (id: string, range?: ByteRange) => ((reads += 1), target.read(id, range)) : Reflect.get(target, property, target)),
    });
    const make = () => createProcessing({ storage: counting, queue: capturing, statuses, processors: standard(), hooks: hooks.hooks, logger: silent, deleteRejected: false, locker });
    const here = make();
    await here.ensure('u1', { sha256: sha(MP4), bytes: MP4.length, head: MP4.subarray(0, 4100) });
    const payload = enqueued[0]!.payload as ProcessUploadPayload;
    expect(payload).toEqual({ id: 'u1', streamed: { sha256: sha(MP4), bytes: MP4.length } });
    expect(JSON.stringify(payload).length).toBeLessThan(200);
    await here.run({ ...jobFor('u1'), payload });
    expect((await statuses.get('u1'))?.processors.type).toMatchObject({ result: { detected: 'video/mp4' } });
    expect(reads).toBe(0);

    // The same job on an instance that never saw the bytes.
    await putUpload('u2', MP4);
    await make().run({ ...jobFor('u2'), payload: { id: 'u2', streamed: payload.streamed } });
    expect((await statuses.get('u2'))?.processors.type).toMatchObject({ result: { detected: 'video/mp4' } });
    expect(reads).toBe(1);
  });

  it('hands each processor the results of the ones before it', async () => {
    await putUpload('u1', Buffer.from('hello world'));
    const last = counted<null>({ name: 'last', run: async () => ({ result: null }) });
    await service([...standard(), last.processor]).run(jobFor('u1'));
    expect(last.calls[0]!.previous).toMatchObject({ size: { stored: 11 }, sha256: { sha256: sha('hello world') }, type: { detected: null } });
  });

  it('resumes after the last recorded step: a recorded step is not run again', async () => {
    await putUpload('u1', Buffer.from('hello world'));
    const sizeRecord = { ok: true, result: { declared: 11, stored: 11 }, at: '2026-01-01T00:00:00.000Z' };
    // What a process killed during sha256 leaves behind.
    await statuses.update('u1', () => ({ id: 'u1', state: 'processing', processors: { size: sizeRecord }, error: null, updatedAt: sizeRecord.at }));
    const [size, hash, type] = standard().map((p) => counted(p));
    await service([size!.processor, hash!.processor, type!.processor]).run(jobFor('u1'));
    expect(size!.calls).toHaveLength(0);
    expect(hash!.calls).toHaveLength(1);
    expect(type!.calls).toHaveLength(1);
    // The later steps still see the recorded result.
    expect(hash!.calls[0]!.previous).toEqual({ size: sizeRecord.result });
    const status = await statuses.get('u1');
    expect(status?.state).toBe('done');
    expect(status?.processors.size).toEqual(sizeRecord);
    expect(status?.processors.sha256?.result).toEqual({ sha256: sha('hello world'), bytes: 11 });
  });

  it('a failing step is recorded with its error and throws (for the queue to retry); the retry resumes there', async () => {
    await putUpload('u1', Buffer.from('hello world'));
    const [size, hash, type] = standard().map((p, i) => counted(p, { failures: i === 1 ? 1 : 0, message: 'disk hiccup' }));
    const processing = service([size!.processor, hash!.processor, type!.processor]);
    await expect(processing.run(jobFor('u1'))).rejects.toThrow('disk hiccup');
    let status = await statuses.get('u1');
    expect(status?.state).toBe('processing');
    expect(status?.processors.size?.ok).toBe(true);
    expect(status?.processors.sha256).toMatchObject({ ok: false, error: 'disk hiccup' });
    expect(status?.processors.type).toBeUndefined();
    expect(postProcess()).toHaveLength(0);

    await processing.run(jobFor('u1', 1));
    status = await statuses.get('u1');
    expect(status?.state).toBe('done');
    expect(status?.processors.sha256).toMatchObject({ ok: true, result: { sha256: sha('hello world') } });
    expect([size!.calls.length, hash!.calls.length, type!.calls.length]).toEqual([1, 2, 1]);
  });

  it('a disallowed real type ends rejected, stops processing and keeps the bytes', async () => {
    await putUpload('u1', EXE, { metadata: { filename: 'movie.mp4', filetype: 'video/mp4' } });
    const after = counted<null>({ name: 'after', run: async () => ({ result: null }) });
    await service([...standard(['video/*']), after.processor]).run(jobFor('u1'));
    const status = await statuses.get('u1');
    expect(status?.state).toBe('rejected');
    expect(status?.error).toContain('application/x-msdownload');
    expect(status?.processors.type?.result).toMatchObject({ detected: 'application/x-msdownload', declared: 'video/mp4' });
    expect(after.calls).toHaveLength(0);
    expect((await storage.getUpload('u1')).offset).toBe(EXE.length);
    expect(postProcess().map((n) => n.event.processing?.state)).toEqual(['rejected']);
    expect(postProcess()[0]!.event.processing?.error).toBe(status?.error);
  });

  it('with deleteRejected, a rejected upload loses its bytes but keeps its status', async () => {
    await putUpload('u1', EXE, { metadata: { filetype: 'video/mp4' } });
    await service(standard(['video/*']), true).run(jobFor('u1'));
    expect((await statuses.get('u1'))?.state).toBe('rejected');
    await expect(storage.getUpload('u1')).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    expect(await fs.readdir(dir)).not.toContain('u1');
  });

  it('with deleteRejected, the rejected upload is deleted only once its lock is free, and the holder is asked to let go', async () => {
    await putUpload('u1', EXE, { metadata: { filetype: 'video/mp4' } });
    // A request (a PATCH, a DELETE) holds the upload.
    const held = locker.newLock('u1');
    let askedToRelease = 0;
    await held.lock(AbortSignal.timeout(1_000), () => {
      askedToRelease += 1;
    });
    const running = service(standard(['video/*']), true).run(jobFor('u1'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(askedToRelease).toBe(1);
    expect((await storage.getUpload('u1')).offset).toBe(EXE.length);
    expect((await statuses.get('u1'))?.state).toBe('processing');
    await held.unlock();
    await running;
    await expect(storage.getUpload('u1')).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    expect((await statuses.get('u1'))?.state).toBe('rejected');
    // The removal let go of the lock: the next request takes it at once.
    const next = locker.newLock('u1');
    await next.lock(AbortSignal.timeout(100), () => undefined);
    await next.unlock();
  });

  it('deleteRejected without the upload locker is refused at construction', () => {
    expect(() => createProcessing({ storage, queue, statuses, processors: standard(), hooks: hooks.hooks, logger: silent, deleteRejected: true })).toThrow(/locker/);
  });

  describe('a crash between the rejecting step and the end (simulated: a status write that never returns)', () => {
    /** The status store of a process that dies at the first write `dies` matches, before or after it lands. */
    function dyingStatuses(dies: (record: StatusRecord) => boolean, when: 'before-write' | 'after-write'): StatusStore {
      return {
        ...statuses,
        update: async (id, change) => {
          if (when === 'before-write') {
            return statuses.update(id, (current) => {
              const record = change(current);
              if (dies(record)) throw new Error('simulated crash');
              return record;
            });
          }
          const record = await statuses.update(id, change);
          if (dies(record)) throw new Error('simulated crash');
          return record;
        },
      };
    }
    const typeRecorded = (record: StatusRecord) => record.processors.type !== undefined;

    async function crashThenRestart(deleteRejected: boolean, dies: (record: StatusRecord) => boolean, when: 'before-write' | 'after-write') {
      await putUpload('u1', EXE, { metadata: { filename: 'movie.mp4', filetype: 'video/mp4' } });
      const crashing = createProcessing({ storage, queue, statuses: dyingStatuses(dies, when), processors: standard(['video/*']), hooks: hooks.hooks, logger: silent, deleteRejected, locker });
      await expect(crashing.run(jobFor('u1'))).rejects.toThrow('simulated crash');
      const [size, hash, type] = standard(['video/*']).map((p) => counted(p));
      await service([size!.processor, hash!.processor, type!.processor], deleteRejected).run(jobFor('u1', 1));
      return { calls: [size!.calls.length, hash!.calls.length, type!.calls.length] };
    }

    it('right after the rejecting step was recorded: the restart rejects, it does not end done', async () => {
      const { calls } = await crashThenRestart(false, typeRecorded, 'after-write');
      const status = await statuses.get('u1');
      expect(status?.state).toBe('rejected');
      expect(status?.error).toContain('application/x-msdownload');
      expect(calls).toEqual([0, 0, 0]);
      expect(postProcess().map((n) => n.event.processing?.state)).toEqual(['rejected']);
    });

    it('with deleteRejected, before the bytes were deleted: the restart deletes them and rejects', async () => {
      await crashThenRestart(true, typeRecorded, 'after-write');
      expect((await statuses.get('u1'))?.state).toBe('rejected');
      await expect(storage.getUpload('u1')).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    });

    it('with deleteRejected, after the bytes were deleted but before it was settled: the restart settles it rejected', async () => {
      await crashThenRestart(true, (record) => record.state === 'rejected', 'before-write');
      await expect(storage.getUpload('u1')).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
      const status = await statuses.get('u1');
      expect(status?.state).toBe('rejected');
      expect(status?.error).toContain('application/x-msdownload');
      expect(postProcess().map((n) => n.event.processing?.state)).toEqual(['rejected']);
    });
  });

  it('a record left "processing" by an upload terminated mid-run is removed when the job runs again', async () => {
    await putUpload('u1', Buffer.from('abc'));
    await statuses.update('u1', () => ({ id: 'u1', state: 'processing', processors: { size: { ok: true, result: {}, at: '' } }, error: null, updatedAt: '' }));
    await storage.datastore.remove('u1');
    await service(standard()).run(jobFor('u1'));
    expect(await statuses.get('u1')).toBeUndefined();
    expect(postProcess()).toEqual([]);
  });

  it('a step that ends after its upload was terminated writes nothing back and announces nothing', async () => {
    await putUpload('u1', Buffer.from('abc'));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const slow: Processor<string> = {
      name: 'slow',
      run: async () => {
        started();
        await gate;
        return { result: 'late' };
      },
    };
    const runDone = service([sha256, slow]).run(jobFor('u1'));
    await within(running, 'the slow step to start');
    // What a DELETE does: remove the upload, then (post-terminate) its status.
    await storage.datastore.remove('u1');
    await statuses.delete('u1');
    release();
    await within(runDone, 'the run to end');
    expect(await statuses.get('u1')).toBeUndefined();
    expect(postProcess()).toEqual([]);
  });

  it('an upload terminated before a run wrote its record (quick steps only) is left without one, announced to no one', async () => {
    for (const alsoDeleteStatus of [true, false]) {
      const id = alsoDeleteStatus ? 'u1' : 'u2';
      await putUpload(id, Buffer.from('abc'));
      // A quick step during which a DELETE lands: the upload goes; its post-terminate may not have run yet.
      const racing: Processor<null> = {
        name: 'racing',
        quick: () => true,
        run: async () => {
          await storage.datastore.remove(id);
          if (alsoDeleteStatus) await statuses.delete(id);
          return { result: null };
        },
      };
      await service([racing]).run(jobFor(id));
      expect(await statuses.get(id)).toBeUndefined();
    }
    expect(postProcess()).toEqual([]);
  });

  it('dead() records failed with the reason and the attempt count, and announces it', async () => {
    await putUpload('u1', Buffer.from('abc'));
    await service(standard()).dead(jobFor('u1', 5), new Error('sha256 exploded'));
    const status = await statuses.get('u1');
    expect(status).toMatchObject({ state: 'failed', error: 'processing failed after 5 attempts: sha256 exploded' });
    expect(postProcess().map((n) => n.event.processing)).toEqual([{ state: 'failed', error: 'processing failed after 5 attempts: sha256 exploded', results: {} }]);
  });

  it('dead() keeps the results recorded so far', async () => {
    await putUpload('u1', Buffer.from('abc'));
    const failing = counted<null>({ name: 'thumbnail', run: async () => ({ result: null }) }, { failures: 99, message: 'no ffmpeg' });
    const processing = service([...standard(), failing.processor]);
    await expect(processing.run(jobFor('u1'))).rejects.toThrow('no ffmpeg');
    await processing.dead(jobFor('u1', 1), new Error('no ffmpeg'));
    const status = await statuses.get('u1');
    expect(status?.state).toBe('failed');
    expect(status?.processors.sha256?.ok).toBe(true);
    expect(status?.processors.thumbnail).toMatchObject({ ok: false, error: 'no ffmpeg' });
    expect(postProcess()[0]!.event.processing?.results).toMatchObject({ sha256: { sha256: sha('abc') }, thumbnail: { error: 'no ffmpeg' } });
  });

  it('dead() of an upload that is gone still records failed', async () => {
    await service(standard()).dead(jobFor('gone', 3), 'a string reason');
    expect(await statuses.get('gone')).toMatchObject({ state: 'failed', error: 'processing failed after 3 attempts: a string reason' });
  });

  it('on the queue: a step that keeps failing ends failed after maxAttempts, announced once', async () => {
    await putUpload('u1', Buffer.from('abc'));
    const failing = counted<null>({ name: 'flaky', run: async () => ({ result: null }) }, { failures: 99, message: 'upstream down' });
    const processing = service([...standard(), failing.processor]);
    queue.start({ run: (job) => processing.run(job), dead: (job, error) => processing.dead(job, error) });
    expect(await processing.ensure('u1')).toBe(true);
    await within(queue.idle(), 'processing to give up');
    expect(failing.calls).toHaveLength(3);
    expect(await statuses.get('u1')).toMatchObject({ state: 'failed', error: 'processing failed after 3 attempts: upstream down' });
    expect(postProcess().map((n) => n.event.processing?.state)).toEqual(['failed']);
    expect(await queue.status(processingKey('u1'))).toBe('dead');
  });

  it('an upload already settled (rejected by pre-finish) is not processed, only announced', async () => {
    await putUpload('u1', Buffer.from('abc'));
    const record: StatusRecord = { id: 'u1', state: 'rejected', processors: {}, error: 'rejected by the pre-finish hook: no', updatedAt: new Date().toISOString() };
    await statuses.update('u1', () => record);
    const [size] = standard().map((p) => counted(p));
    await service([size!.processor]).run(jobFor('u1'));
    expect(size!.calls).toHaveLength(0);
    expect((await statuses.get('u1'))?.state).toBe('rejected');
    expect(postProcess().map((n) => [n.event.processing?.state, n.event.processing?.error])).toEqual([['rejected', 'rejected by the pre-finish hook: no']]);
  });

  it('an unfinished upload is not processed: run throws and records nothing', async () => {
    await putUpload('u1', Buffer.from('0123456789'), { written: 4 });
    await expect(service(standard()).run(jobFor('u1'))).rejects.toThrow('upload u1 is not finished (4 of 10 bytes)');
    expect(await statuses.get('u1')).toBeUndefined();
  });

  it('an upload removed before its processing ran is skipped', async () => {
    await service(standard()).run(jobFor('never-existed'));
    await putUpload('u2', Buffer.from('abc'));
    await storage.datastore.remove('u2');
    await service(standard()).run(jobFor('u2'));
    expect(await statuses.get('never-existed')).toBeUndefined();
    expect(await statuses.get('u2')).toBeUndefined();
    expect(hooks.notified).toEqual([]);
  });

  it('a storage error other than "not found" fails the run (to be retried)', async () => {
    const broken: UploadStorage = { ...storage, getUpload: async () => Promise.reject(new HttpError('ERR_STORAGE_UNAVAILABLE', 'disk gone')) };
    const processing = createProcessing({ storage: broken, queue, statuses, processors: standard(), hooks: hooks.hooks, logger: silent, deleteRejected: false });
    await expect(processing.run(jobFor('u1'))).rejects.toThrow('disk gone');
  });

  it('a zero-byte upload is processed', async () => {
    await putUpload('empty', Buffer.alloc(0), { metadata: { filetype: 'text/plain' } });
    await service(standard(['text/*'])).run(jobFor('empty'));
    const status = await statuses.get('empty');
    expect(status?.state).toBe('done');
    expect(status?.processors.sha256?.result).toEqual({ sha256: sha(''), bytes: 0 });
  });

  it('ensure() enqueues once per upload id', async () => {
    const processing = service(standard());
    expect(await processing.ensure('u1')).toBe(true);
    expect(await processing.ensure('u1')).toBe(false);
    expect(await queue.status(processingKey('u1'))).toBe('pending');
    expect(await queue.status(processingKey('u2'))).toBeUndefined();
  });

  it('reconcile() queues exactly the finished uploads that have no processing job', async () => {
    const processing = service(standard());
    await putUpload('finished-a', Buffer.from('aaa'));
    await putUpload('finished-b', Buffer.from('bbb'));
    await putUpload('unfinished', Buffer.from('cccccc'), { written: 2 });
    await putUpload('already-queued', Buffer.from('ddd'));
    await processing.ensure('already-queued');
    await putUpload('already-done', Buffer.from('eee'));
    await processing.ensure('already-done');
    queue.start({ run: (job) => processing.run(job), dead: (job, error) => processing.dead(job, error) });
    await within(queue.idle(), 'the queued processing to finish');
    await queue.stop();

    expect(await processing.reconcile()).toBe(2);
    expect(await queue.status(processingKey('finished-a'))).toBe('pending');
    expect(await queue.status(processingKey('finished-b'))).toBe('pending');
    expect(await queue.status(processingKey('unfinished'))).toBeUndefined();
    // A second sweep finds nothing new.
    expect(await processing.reconcile()).toBe(0);

    queue.start({ run: (job) => processing.run(job), dead: (job, error) => processing.dead(job, error) });
    await within(queue.idle(), 'the reconciled processing to finish');
    for (const id of ['finished-a', 'finished-b', 'already-queued', 'already-done']) expect((await statuses.get(id))?.state, id).toBe('done');
    expect(await statuses.get('unfinished')).toBeUndefined();
  });

  it('reconcile() skips an upload it cannot read and goes on', async () => {
    await putUpload('fine', Buffer.from('abc'));
    await putUpload('broken', Buffer.from('abc'));
    await fs.writeFile(path.join(dir, 'broken.json'), '{not json');
    expect(await service(standard()).reconcile()).toBe(1);
    expect(await queue.status(processingKey('fine'))).toBe('pending');
  });

  describe('the settled marker (processing state that outlives the instance)', () => {
    it('every end state marks the upload settled, after its post-process hook is queued', async () => {
      await putUpload('done', MP4, { metadata: { filetype: 'video/mp4' } });
      await putUpload('rejected', EXE, { metadata: { filename: 'movie.mp4', filetype: 'video/mp4' } });
      await putUpload('failed', Buffer.from('abc'));
      expect(await storage.isSettled('done')).toBe(false);
      await service(standard(['video/*'])).run(jobFor('done'));
      await service(standard(['video/*'])).run(jobFor('rejected'));
      await service(standard()).dead(jobFor('failed', 3), new Error('gave up'));
      for (const id of ['done', 'rejected', 'failed']) expect(await storage.isSettled(id), id).toBe(true);
      expect(postProcess().map((n) => n.key).sort()).toEqual(['post-process:done', 'post-process:failed', 'post-process:rejected']);
    });

    it('a rejected upload whose bytes are deleted leaves no marker behind', async () => {
      await putUpload('u1', EXE, { metadata: { filename: 'movie.mp4', filetype: 'video/mp4' } });
      await service(standard(['video/*']), true).run(jobFor('u1'));
      expect((await statuses.get('u1'))?.state).toBe('rejected');
      expect(await storage.isSettled('u1')).toBe(false);
      expect(await fs.readdir(path.join(dir, '.settled'))).toEqual([]);
    });

    it('a job for a settled upload (a new instance, a HEAD) does nothing and announces nothing again', async () => {
      await putUpload('u1', Buffer.from('abc'));
      await service(standard()).run(jobFor('u1'));
      const record = await statuses.get('u1');
      const announced = hooks.notified.length;
      await service(standard()).run(jobFor('u1'));
      expect(hooks.notified.length).toBe(announced);
      expect(await statuses.get('u1')).toEqual(record);
    });

    it('a settled record without its marker (a crash in between) is announced and marked', async () => {
      await putUpload('u1', Buffer.from('abc'));
      await statuses.update('u1', () => ({ id: 'u1', state: 'done', processors: {}, error: null, updatedAt: new Date().toISOString() }));
      await service(standard()).run(jobFor('u1'));
      expect(postProcess().map((n) => n.key)).toEqual(['post-process:u1']);
      expect(await storage.isSettled('u1')).toBe(true);
    });

    it('reconcile() reads only unsettled uploads, and marks those this queue already processed', async () => {
      const processing = service(standard());
      await putUpload('settled', Buffer.from('aaa'));
      await storage.markSettled('settled');
      // Processed before markers existed: the queue knows it as done, the record says done.
      await putUpload('legacy', Buffer.from('bbb'));
      await processing.ensure('legacy');
      queue.start({ run: (job) => processing.run(job), dead: (job, error) => processing.dead(job, error) });
      await within(queue.idle(), 'the processing to finish');
      await queue.stop();
      await fs.rm(path.join(dir, '.settled', 'legacy'));
      await putUpload('new', Buffer.from('ccc'));

      const read: string[] = [];
      const counted: UploadStorage = { ...storage, getUpload: (id) => (read.push(id), storage.getUpload(id)) };
      const reconciling = createProcessing({ storage: counted, queue, statuses, processors: standard(), hooks: hooks.hooks, logger: silent, deleteRejected: false });
      expect(await reconciling.reconcile()).toBe(1);
      expect(read.sort()).toEqual(['legacy', 'new']);
      expect(await storage.isSettled('legacy')).toBe(true);
      expect(await queue.status(processingKey('new'))).toBe('pending');
      read.length = 0;
      expect(await reconciling.reconcile()).toBe(0);
      expect(read).toEqual(['new']);
    });
  });
});
