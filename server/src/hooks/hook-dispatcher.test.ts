import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import type { Job, JobQueue, JobStatus, NewJob } from '../processing/job-queue.js';
import { createTestApp, type TestApp, type TestAppDeps } from '../testing/create-test-app.js';
import { createFinishedUpload, createUpload, encodeMetadata, headUpload, OFFSET_STREAM, patchUpload, TUS, waitFor } from '../testing/http-test-helpers.js';
import { createHookDispatcher, type HookDelivery } from './hook-dispatcher.js';
import type { HookPayload } from './http-hook-client.js';
import { verifyHookSignature } from './signature.js';
import type { HookEvent, HookHandlers, HookType } from './types.js';

const SECRET = 'dispatcher-test-secret-0123';

/** A pino logger whose lines the test can read. */
function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** An in-memory JobQueue that records what is enqueued, idempotent by key like the real one. */
function memoryQueue({ slowFirstEnqueueMs = 0 } = {}) {
  const jobs: NewJob[] = [];
  const keys = new Set<string>();
  let calls = 0;
  const queue: JobQueue = {
    async enqueue(job) {
      calls += 1;
      if (calls === 1 && slowFirstEnqueueMs > 0) await new Promise((resolve) => setTimeout(resolve, slowFirstEnqueueMs));
      if (keys.has(job.key)) return false;
      keys.add(job.key);
      jobs.push(job);
      return true;
    },
    async status(key): Promise<JobStatus | undefined> {
      return keys.has(key) ? 'pending' : undefined;
    },
    start() {},
    async stop() {},
    async idle() {},
  };
  return { queue, jobs };
}

const asJob = (job: NewJob, attempts = 0): Job => ({ ...job, seq: 1, enqueuedAt: new Date().toISOString(), attempts, lastError: null });

const upload = (id = '0123456789abcdef0123456789abcdef'): HookEvent['upload'] => ({ id, size: 10, offset: 0, metadata: { filename: 'a.txt' }, createdAt: null });
const eventOf = (type: HookType, id?: string): HookEvent => ({ type, upload: upload(id), request: null });

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

/** A local hook receiver for the HTTP target: each test sets `reply`. */
type Received = { type: string; payload: HookPayload; headers: http.IncomingHttpHeaders; valid: boolean };
let receiver: http.Server;
let receiverUrl: string;
const received: Received[] = [];
let reply: (r: Received) => { status?: number; body?: string; delayMs?: number } = () => ({});

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: Received = {
        type: String(req.headers['hook-type']),
        payload: JSON.parse(body) as HookPayload,
        headers: req.headers,
        valid: verifyHookSignature(SECRET, { body, signature: req.headers['hook-signature'] as string, timestamp: req.headers['hook-timestamp'] as string }),
      };
      received.push(entry);
      const { status = 200, body: text = '{}', delayMs = 0 } = reply(entry);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(text);
      };
      if (delayMs > 0) setTimeout(send, delayMs).unref();
      else send();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    receiver.close(() => resolve());
    receiver.closeAllConnections();
  });
});

afterEach(() => {
  received.length = 0;
  reply = () => ({});
});

describe('createHookDispatcher: blocking hooks', () => {
  const dispatcher = (handlers: HookHandlers, http?: { timeoutMs?: number }, blockingTimeoutMs?: number) => {
    const { logger, lines } = captureLogger();
    const { queue } = memoryQueue();
    const d = createHookDispatcher({
      handlers,
      http: http ? { url: receiverUrl, secret: SECRET, timeoutMs: http.timeoutMs ?? 2_000 } : undefined,
      queue,
      logger,
      onStopUpload: async () => undefined,
      blockingTimeoutMs,
    });
    return { d, lines };
  };

  it('answers 504 when a library handler outlasts HOOKS_TIMEOUT', async () => {
    let release: () => void = () => undefined;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const { d } = dispatcher({ 'pre-create': () => hung }, undefined, 50);
    const error = await rejectionOf(d.runBlocking('pre-create', eventOf('pre-create')));
    release();
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(504);
    expect((error as HttpError).code).toBe('ERR_HOOK_TIMEOUT');
  });

  it('lets the request through unchanged with no handler and no HOOKS_URL', async () => {
    const { d } = dispatcher({});
    expect(await d.runBlocking('pre-create', eventOf('pre-create'))).toEqual({});
    expect(d.hasTargets('pre-create')).toBe(false);
  });

  it('returns the metadata a library handler sets', async () => {
    const { d } = dispatcher({ 'pre-create': (e) => ({ metadata: { ...e.upload.metadata, owner: 'me' } }) });
    expect(await d.runBlocking('pre-create', eventOf('pre-create'))).toEqual({ metadata: { filename: 'a.txt', owner: 'me' } });
  });

  it('turns a rejection into an HttpError: the 4xx kept, anything else 400, the message bounded and on one line', async () => {
    const rejectWith = async (reject: { status?: number; message: string }) => {
      const { d } = dispatcher({ 'pre-terminate': () => ({ reject }) });
      const error = await rejectionOf(d.runBlocking('pre-terminate', eventOf('pre-terminate')));
      expect(error).toBeInstanceOf(HttpError);
      return error as HttpError;
    };
    expect(await rejectWith({ status: 451, message: 'legal' })).toMatchObject({ code: 'ERR_UPLOAD_REJECTED', status: 451, message: 'legal' });
    for (const status of [undefined, 200, 302, 500, 503, 600, 450.5]) expect((await rejectWith({ status, message: 'x' })).status, String(status)).toBe(400);
    expect((await rejectWith({ message: '' })).message).toBe('rejected by the pre-terminate hook');
    expect((await rejectWith({ message: 'y'.repeat(5000) })).message).toHaveLength(500);
    const multiline = await rejectWith({ message: 'first line\r\nsecond\u0000line' });
    expect(multiline.body.startsWith('ERR_UPLOAD_REJECTED: ')).toBe(true);
    expect(multiline.body.indexOf('\n')).toBe(multiline.body.length - 1);
    expect(multiline.body).not.toContain('\r');
    expect(multiline.body).not.toContain('\u0000');
    expect(multiline.message).toContain('first line');
    expect(multiline.message).toContain('second');
  });

  it('answers 500 ERR_HOOK_FAILED when a library handler throws, and logs the cause', async () => {
    const { d, lines } = dispatcher({ 'pre-finish': () => Promise.reject(new Error('database password is hunter2')) });
    const error = (await rejectionOf(d.runBlocking('pre-finish', eventOf('pre-finish')))) as HttpError;
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ code: 'ERR_HOOK_FAILED', status: 500 });
    expect(error.body).not.toContain('hunter2');
    expect(lines.find((l) => l.msg === 'hook handler failed')).toMatchObject({ hook: 'pre-finish', err: { message: 'database password is hunter2' } });
  });

  it('passes the library handler’s metadata on to HOOKS_URL, whose reply wins', async () => {
    reply = () => ({ body: JSON.stringify({ metadata: { filename: 'from-http.txt' } }) });
    const { d } = dispatcher({ 'pre-create': (e) => ({ metadata: { ...e.upload.metadata, owner: 'library' } }) }, {});
    expect(await d.runBlocking('pre-create', eventOf('pre-create'))).toEqual({ metadata: { filename: 'from-http.txt' } });
    expect(received).toHaveLength(1);
    expect(received[0]!.valid).toBe(true);
    expect(received[0]!.payload.upload.metadata).toEqual({ filename: 'a.txt', owner: 'library' });
    expect(received[0]!.payload.attempt).toBe(1);
  });

  it('does not call HOOKS_URL when the library handler already rejected', async () => {
    const { d } = dispatcher({ 'pre-create': () => ({ reject: { status: 403, message: 'no' } }) }, {});
    await rejectionOf(d.runBlocking('pre-create', eventOf('pre-create')));
    expect(received).toHaveLength(0);
  });

  it('maps HOOKS_URL answers: reject reply, 4xx with its message, 5xx → 502, timeout → 504, nonsense ignored', async () => {
    const { d, lines } = dispatcher({}, { timeoutMs: 300 });
    const run = () => d.runBlocking('pre-create', eventOf('pre-create'));

    reply = () => ({ body: JSON.stringify({ reject: { status: 409, message: 'duplicate file' } }) });
    expect(await rejectionOf(run())).toMatchObject({ code: 'ERR_UPLOAD_REJECTED', status: 409, message: 'duplicate file' });

    reply = () => ({ status: 403, body: JSON.stringify({ message: 'token expired' }) });
    expect(await rejectionOf(run())).toMatchObject({ code: 'ERR_UPLOAD_REJECTED', status: 403, message: 'token expired' });
    reply = () => ({ status: 401, body: JSON.stringify({ error: 'who are you' }) });
    expect(await rejectionOf(run())).toMatchObject({ status: 401, message: 'who are you' });
    reply = () => ({ status: 422, body: 'plain text reason\n' });
    expect(await rejectionOf(run())).toMatchObject({ status: 422, message: 'plain text reason' });
    reply = () => ({ status: 400, body: '' });
    expect(await rejectionOf(run())).toMatchObject({ status: 400, message: 'rejected by the pre-create hook' });

    reply = () => ({ status: 500, body: 'stack trace with secrets' });
    const failed = (await rejectionOf(run())) as HttpError;
    expect(failed).toMatchObject({ code: 'ERR_HOOK_FAILED', status: 502 });
    expect(failed.body).not.toContain('secrets');

    reply = () => ({ delayMs: 3_000 });
    const late = (await rejectionOf(run())) as HttpError;
    expect(late).toMatchObject({ code: 'ERR_HOOK_TIMEOUT', status: 504 });
    expect(late.message).not.toContain('ms');
    expect(lines.filter((l) => l.msg === 'hook endpoint failed')).toHaveLength(2);

    for (const body of ['[]', '"yes"', 'null', 'not json', JSON.stringify({ metadata: ['a'] }), JSON.stringify({ metadata: { a: 1 } }), JSON.stringify({ metadata: { 'bad key': 'x' } }), JSON.stringify({ reject: 'no' }), JSON.stringify({ stopUpload: true })]) {
      reply = () => ({ body });
      expect(await run(), body).toEqual({});
    }
  });
});

describe('createHookDispatcher: notifying hooks', () => {
  it('queues nothing without a target, and one job per target otherwise', async () => {
    const { logger } = captureLogger();
    const none = memoryQueue();
    const bare = createHookDispatcher({ handlers: {}, http: undefined, queue: none.queue, logger, onStopUpload: async () => undefined });
    await bare.notify('post-finish', eventOf('post-finish'), 'post-finish:x');
    expect(none.jobs).toEqual([]);

    const both = memoryQueue();
    const d = createHookDispatcher({
      handlers: { 'post-finish': () => undefined },
      http: { url: receiverUrl, secret: SECRET, timeoutMs: 1_000 },
      queue: both.queue,
      logger,
      onStopUpload: async () => undefined,
    });
    const event = eventOf('post-finish', 'u1');
    await d.notify('post-finish', event, 'post-finish:u1');
    expect(both.jobs.map((j) => [j.key, j.group, j.kind])).toEqual([
      ['hook:library:post-finish:u1', 'hook:library:u1', 'deliver-hook'],
      ['hook:http:post-finish:u1', 'hook:http:u1', 'deliver-hook'],
    ]);
    const deliveries = both.jobs.map((j) => j.payload as HookDelivery);
    expect(deliveries.map((p) => p.event)).toEqual([event, event]);
    expect(deliveries[0]!.deliveryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(deliveries[0]!.deliveryId).not.toBe(deliveries[1]!.deliveryId);
    // Only the HTTP target for a type without a library handler.
    expect(d.hasTargets('post-create')).toBe(true);
    await d.notify('post-create', eventOf('post-create', 'u1'), 'post-create:u1');
    expect(both.jobs.at(-1)?.key).toBe('hook:http:post-create:u1');
    expect(both.jobs).toHaveLength(3);
    // The same key again adds nothing.
    await d.notify('post-finish', event, 'post-finish:u1');
    expect(both.jobs).toHaveLength(3);
  });

  it('enqueues one upload’s notifications in the order they happened, even when an enqueue is slow', async () => {
    const { logger } = captureLogger();
    const { queue, jobs } = memoryQueue({ slowFirstEnqueueMs: 100 });
    const d = createHookDispatcher({ handlers: { 'post-create': () => undefined, 'post-receive': () => undefined, 'post-finish': () => undefined }, http: undefined, queue, logger, onStopUpload: async () => undefined });
    const first = d.notify('post-create', eventOf('post-create', 'u1'), 'post-create:u1');
    const second = d.notify('post-receive', eventOf('post-receive', 'u1'), 'post-receive:u1:5');
    const third = d.notify('post-finish', eventOf('post-finish', 'u1'), 'post-finish:u1');
    await d.flush('u1');
    expect(jobs.map((j) => j.key)).toEqual(['hook:library:post-create:u1', 'hook:library:post-receive:u1:5', 'hook:library:post-finish:u1']);
    await Promise.all([first, second, third]);
  });

  it('delivers to the library handler, and throws for the queue to retry when it fails', async () => {
    const { logger } = captureLogger();
    const { queue, jobs } = memoryQueue();
    const seen: HookEvent[] = [];
    let failures = 1;
    const d = createHookDispatcher({
      handlers: {
        'post-finish': (e) => {
          seen.push(e);
          if (failures-- > 0) throw new Error('receiver down');
        },
      },
      http: undefined,
      queue,
      logger,
      onStopUpload: async () => undefined,
    });
    await d.notify('post-finish', eventOf('post-finish', 'u1'), 'post-finish:u1');
    const job = asJob(jobs[0]!);
    await expect(d.deliver(job)).rejects.toThrow('receiver down');
    await d.deliver(asJob(jobs[0]!, 1));
    expect(seen).toEqual([eventOf('post-finish', 'u1'), eventOf('post-finish', 'u1')]);
  });

  it('posts a queued delivery with its stable deliveryId and the attempt number', async () => {
    const { logger } = captureLogger();
    const { queue, jobs } = memoryQueue();
    const d = createHookDispatcher({ handlers: {}, http: { url: receiverUrl, secret: SECRET, timeoutMs: 2_000 }, queue, logger, onStopUpload: async () => undefined });
    await d.notify('post-create', eventOf('post-create', 'u2'), 'post-create:u2');
    const { deliveryId } = jobs[0]!.payload as HookDelivery;
    reply = () => ({ status: 503 });
    await expect(d.deliver(asJob(jobs[0]!, 0))).rejects.toThrow('hook endpoint answered 503');
    reply = () => ({});
    await d.deliver(asJob(jobs[0]!, 1));
    expect(received.map((r) => [r.payload.deliveryId, r.headers['hook-delivery-id'], r.payload.attempt, r.valid])).toEqual([
      [deliveryId, deliveryId, 1, true],
      [deliveryId, deliveryId, 2, true],
    ]);
  });

  it('stops an upload when post-receive asks, from either target, and only post-receive', async () => {
    const { logger } = captureLogger();
    const { queue, jobs } = memoryQueue();
    const stopped: string[] = [];
    const d = createHookDispatcher({
      handlers: { 'post-receive': () => ({ stopUpload: true }), 'post-finish': () => ({ stopUpload: true }) as never },
      http: { url: receiverUrl, secret: SECRET, timeoutMs: 2_000 },
      queue,
      logger,
      onStopUpload: async (id) => void stopped.push(id),
    });
    reply = (r) => ({ body: JSON.stringify({ stopUpload: r.type === 'post-receive' ? true : 'yes' }) });
    await d.notify('post-receive', eventOf('post-receive', 'u3'), 'post-receive:u3:1');
    await d.notify('post-finish', eventOf('post-finish', 'u3'), 'post-finish:u3');
    for (const job of jobs) await d.deliver(asJob(job));
    expect(stopped).toEqual(['u3', 'u3']);
  });

  it('skips an HTTP delivery queued before HOOKS_URL was removed', async () => {
    const { logger } = captureLogger();
    const { queue, jobs } = memoryQueue();
    const withHttp = createHookDispatcher({ handlers: {}, http: { url: receiverUrl, secret: SECRET, timeoutMs: 1_000 }, queue, logger, onStopUpload: async () => undefined });
    await withHttp.notify('post-finish', eventOf('post-finish'), 'post-finish:x');
    const without = createHookDispatcher({ handlers: {}, http: undefined, queue, logger, onStopUpload: async () => undefined });
    await without.deliver(asJob(jobs[0]!));
    expect(received).toHaveLength(0);
  });
});

/** Library hooks through the real app (createApp deps.hooks), requests through app.request(). */
describe('library hooks in the app', () => {
  const apps: TestApp[] = [];
  const calls: { type: HookType; event: HookEvent }[] = [];
  const record = (type: HookType) => (event: HookEvent) => void calls.push({ type, event });

  async function newApp(hooks: HookHandlers, env: Record<string, string> = {}, deps: TestAppDeps = {}): Promise<TestApp> {
    const t = await createTestApp({ HOOKS_RETRY_DELAY: '20ms', ...env }, { ...deps, hooks });
    apps.push(t);
    await t.startBackground();
    return t;
  }

  afterEach(async () => {
    for (const t of apps.splice(0)) await t.cleanup();
    calls.length = 0;
  });

  const types = () => calls.map((c) => c.type);

  it('pre-create sees the sanitized metadata and the request; the metadata it returns is stored', async () => {
    const t = await newApp({
      'pre-create': (event) => {
        calls.push({ type: 'pre-create', event });
        return { metadata: { ...event.upload.metadata, owner: 'user-7' } };
      },
    });
    const { id, path } = await createUpload(t.app, { 'Upload-Length': '5', 'Upload-Metadata': encodeMetadata({ filename: '../x.txt' }) });
    const { event } = calls[0]!;
    expect(event.type).toBe('pre-create');
    expect(event.upload).toEqual({ id, size: 5, offset: 0, metadata: { filename: '_x.txt' }, createdAt: expect.any(String) });
    expect(event.request).toMatchObject({ method: 'POST', uri: '/files', remoteAddress: null });
    expect(event.request?.headers).toMatchObject({ 'tus-resumable': '1.0.0', 'upload-length': '5' });
    const head = await headUpload(t.app, path);
    expect(head.headers.get('upload-metadata')).toBe(encodeMetadata({ filename: '_x.txt', owner: 'user-7' }));
  });

  it('ignores (and logs) metadata from pre-create that an Upload-Metadata header cannot carry', async () => {
    const { logger, lines } = captureLogger();
    const replies: unknown[] = [{ 'bad key': 'x' }, { 'a,b': 'x' }, { 'line\nbreak': 'x' }, { ключ: 'x' }, { '': 'x' }, { size: 5 }];
    let next = 0;
    const t = await newApp({ 'pre-create': () => ({ metadata: replies[next++] as Record<string, string> }) }, {}, { logger });
    for (let i = 0; i < replies.length; i += 1) {
      const { path } = await createUpload(t.app, { 'Upload-Length': '5', 'Upload-Metadata': encodeMetadata({ filename: 'kept.txt' }) });
      const head = await headUpload(t.app, path);
      expect(head.status, JSON.stringify(replies[i])).toBe(200);
      expect(head.headers.get('upload-metadata')).toBe(encodeMetadata({ filename: 'kept.txt' }));
    }
    expect(lines.filter((l) => l.msg === 'hook returned metadata an Upload-Metadata header cannot carry; ignored')).toHaveLength(replies.length);
  });

  it('pre-create rejections reach the client; a throwing handler is a bare 500 and creates nothing', async () => {
    let mode: 'reject' | 'throw' = 'reject';
    const t = await newApp({
      'pre-create': () => {
        if (mode === 'throw') throw new Error('internal detail /srv/app.js');
        return { reject: { status: 403, message: 'quota exceeded' } };
      },
      'post-create': record('post-create'),
    });
    const post = () => t.app.request('http://localhost/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '5', Host: 'localhost' } });
    const rejected = await post();
    expect(rejected.status).toBe(403);
    expect(await rejected.text()).toBe('ERR_UPLOAD_REJECTED: quota exceeded\n');
    expect(rejected.headers.get('location')).toBeNull();

    mode = 'throw';
    const failed = await post();
    expect(failed.status).toBe(500);
    expect(await failed.text()).toBe('ERR_HOOK_FAILED: the pre-create hook failed; try again later\n');
    await t.state.queue.idle();
    expect(types()).toEqual([]);
    expect((await fs.readdir(t.storageDir)).filter((name) => !name.startsWith('.'))).toEqual([]);
  });

  it('delivers post-create, post-finish and post-process in order, retrying a failing handler with the same event', async () => {
    let postFinishFailures = 2;
    const t = await newApp({
      'post-create': record('post-create'),
      'post-finish': (event) => {
        calls.push({ type: 'post-finish', event });
        if (postFinishFailures-- > 0) throw new Error('not yet');
      },
      'post-process': record('post-process'),
    });
    const { id } = await createFinishedUpload(t.app, 'hello world', { filename: 'hello.txt', filetype: 'text/plain' });
    await waitFor(() => types().includes('post-process'), { timeoutMs: 10_000 });
    await t.state.queue.idle();
    expect(types()).toEqual(['post-create', 'post-finish', 'post-finish', 'post-finish', 'post-process']);
    const finishes = calls.filter((c) => c.type === 'post-finish').map((c) => c.event);
    expect(finishes[1]).toEqual(finishes[0]);
    expect(finishes[2]).toEqual(finishes[0]);
    expect(finishes[0]).toMatchObject({ upload: { id, size: 11, offset: 11 }, request: { method: 'PATCH', uri: `/files/${id}` } });
    const processed = calls.at(-1)!.event;
    expect(processed.processing).toMatchObject({ state: 'done', error: null, results: { sha256: { sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9', bytes: 11 } } });
  });

  it('never holds up an upload: a hanging post-create handler delays only the notifications behind it', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const t = await newApp({
      'post-create': async (event) => {
        calls.push({ type: 'post-create', event });
        await released;
      },
      'post-finish': record('post-finish'),
    });
    try {
      const { path } = await createFinishedUpload(t.app, 'fast bytes');
      expect((await headUpload(t.app, path)).headers.get('upload-offset')).toBe('10');
      await waitFor(() => types().includes('post-create'));
      expect(types()).toEqual(['post-create']);
    } finally {
      release();
    }
    await waitFor(() => types().includes('post-finish'));
    expect(types()).toEqual(['post-create', 'post-finish']);
  });

  it('pre-finish can reject the last PATCH: the status says rejected and post-process reports it', async () => {
    const t = await newApp({
      'pre-finish': (event) => (event.upload.metadata.filename === 'bad.txt' ? { reject: { status: 422, message: 'not on the list' } } : undefined),
      'post-finish': record('post-finish'),
      'post-process': record('post-process'),
    });
    const { id, path } = await createUpload(t.app, { 'Upload-Length': '3', 'Upload-Metadata': encodeMetadata({ filename: 'bad.txt' }) });
    const res = await patchUpload(t.app, path, 0, 'abc');
    expect(res.status).toBe(422);
    expect(await res.text()).toBe('ERR_UPLOAD_REJECTED: not on the list\n');
    await waitFor(() => types().includes('post-process'), { timeoutMs: 10_000 });
    expect(types()).toEqual(['post-finish', 'post-process']);
    expect(calls[1]!.event.processing).toMatchObject({ state: 'rejected', error: 'rejected by the pre-finish hook: not on the list' });
    const status = await t.app.request(`/uploads/${id}`);
    expect(await status.json()).toMatchObject({ state: 'rejected' });
  });

  it('pre-terminate can veto a DELETE; post-terminate follows one that happens', async () => {
    let veto = true;
    const t = await newApp({
      'pre-terminate': (event) => {
        calls.push({ type: 'pre-terminate', event });
        return veto ? { reject: { status: 409, message: 'still processing' } } : undefined;
      },
      'post-terminate': record('post-terminate'),
    });
    const { id, path } = await createUpload(t.app, { 'Upload-Length': '10', 'Upload-Metadata': encodeMetadata({ filename: 'keep.txt' }) });
    expect((await patchUpload(t.app, path, 0, 'abcd')).status).toBe(204);
    const vetoed = await t.app.request(path, { method: 'DELETE', headers: TUS });
    expect(vetoed.status).toBe(409);
    expect(await vetoed.text()).toBe('ERR_UPLOAD_REJECTED: still processing\n');
    expect((await headUpload(t.app, path)).status).toBe(200);

    veto = false;
    const deleted = await t.app.request(path, { method: 'DELETE', headers: TUS });
    expect(deleted.status).toBe(204);
    expect((await headUpload(t.app, path)).status).toBe(404);
    await waitFor(() => types().includes('post-terminate'));
    const terminated = calls.find((c) => c.type === 'post-terminate')!.event;
    expect(terminated.upload).toEqual({ id, size: 10, offset: 4, metadata: { filename: 'keep.txt' }, createdAt: expect.any(String) });
    expect(terminated.request).toMatchObject({ method: 'DELETE', uri: path });
    expect(types()).toEqual(['pre-terminate', 'pre-terminate', 'post-terminate']);
  });

  it('has post-create and post-terminate durably queued by the time the client hears back', async () => {
    const t = await createTestApp({}, { hooks: { 'post-create': () => undefined, 'post-terminate': () => undefined } });
    apps.push(t); // the queue is not started: nothing is delivered, only queued
    const { id, path } = await createUpload(t.app, { 'Upload-Length': '10' });
    expect(await t.state.queue.status(`hook:library:post-create:${id}`)).toBe('pending');
    const deleted = await t.app.request(path, { method: 'DELETE', headers: TUS });
    expect(deleted.status).toBe(204);
    expect(await t.state.queue.status(`hook:library:post-terminate:${id}`)).toBe('pending');
  });

  it('post-receive {stopUpload: true} ends the PATCH in flight with 400 and refuses later ones', async () => {
    const t = await newApp({ 'post-receive': () => ({ stopUpload: true }) }, { POST_RECEIVE_INTERVAL: '50ms' });
    const size = 2 * 1024 * 1024;
    const { id, path } = await createUpload(t.app, { 'Upload-Length': String(size) });
    // A slow body: 16 KiB every 10 ms, bounded by its size (about 1.3 s in all).
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= size) return void this.push(null);
        setTimeout(() => {
          sent += 16 * 1024;
          this.push(Buffer.alloc(16 * 1024, 1));
        }, 10);
      },
    });
    const res = await t.app.request(path, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': String(size) },
      body: Readable.toWeb(body) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('ERR_UPLOAD_STOPPED: this upload was stopped by the server and takes no more bytes\n');
    body.destroy();
    const offset = Number((await headUpload(t.app, path)).headers.get('upload-offset'));
    expect(offset).toBeLessThan(size);
    const again = await patchUpload(t.app, path, offset, 'more');
    expect(again.status).toBe(400);
    expect((await t.state.statuses.get(id))?.stopped).toBe(true);
    expect(await (await t.app.request(`/uploads/${id}`)).json()).toMatchObject({ state: 'rejected', error: 'stopped by the post-receive hook' });
  });
});
