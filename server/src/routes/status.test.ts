import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import { createProcessingState } from '../processing/index.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createFinishedUpload, createUpload, patchUpload, waitFor } from '../testing/http-test-helpers.js';

/** GET /uploads/<id> and its events, through app.request(); the queue runs only when a test starts it. */

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

async function testApp(env: Record<string, string> = {}, deps: Parameters<typeof createTestApp>[1] = {}): Promise<TestApp> {
  const app = await createTestApp(env, deps);
  apps.push(app);
  return app;
}

type Status = { id: string; state: string; offset: number | null; length: number | null; metadata: Record<string, string>; processors: Record<string, { ok: boolean; result?: unknown }>; error: string | null; uploadUrl: string };

async function status(app: TestApp, id: string): Promise<{ code: number; body: Status; headers: Headers }> {
  const res = await app.app.request(`/uploads/${id}`);
  return { code: res.status, body: (res.status === 200 ? await res.json() : await res.text()) as Status, headers: res.headers };
}

/** Reads server-sent events from a response body until it ends or `max` events arrived (bounded by a timeout). */
async function readEvents(res: Response, { max = 50, timeoutMs = 5_000 } = {}): Promise<{ events: { event: string; data: Status }[]; ended: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: { event: string; data: Status }[] = [];
  let buffer = '';
  let ended = false;
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (let i = 0; i < 1_000 && events.length < max; i += 1) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (data) events.push({ event, data: JSON.parse(data) as Status });
      }
    }
  } finally {
    clearTimeout(timer);
    if (!ended) await reader.cancel().catch(() => undefined);
  }
  return { events, ended };
}

describe('GET /uploads/<id>', () => {
  it('answers 404 for ids that are malformed or unknown, and never caches', async () => {
    const app = await testApp();
    for (const id of ['0123456789abcdef0123456789abcdef', '..%2F..%2Fetc', 'a'.repeat(129), 'bad%00id']) {
      const { code, body } = await status(app, id);
      expect(code, id).toBe(404);
      expect(body as unknown as string).toMatch(/^ERR_UPLOAD_NOT_FOUND: /);
    }
  });

  it('says uploading with the offset until the last byte, then processing until the queue runs, then done', async () => {
    const app = await testApp();
    const { id, path } = await createUpload(app.app, { 'Upload-Length': '11', 'Upload-Metadata': 'filename aGVsbG8udHh0' });
    let got = await status(app, id);
    expect(got.headers.get('cache-control')).toBe('no-store');
    expect(got.body).toEqual({ id, state: 'uploading', offset: 0, length: 11, metadata: { filename: 'hello.txt' }, processors: {}, error: null, uploadUrl: `/files/${id}`, downloadUrl: null, eventsUrl: `/uploads/${id}/events`, posterUrl: null, updatedAt: null });
    expect((await patchUpload(app.app, path, 0, 'hello')).status).toBe(204);
    expect((await status(app, id)).body).toMatchObject({ state: 'uploading', offset: 5 });

    const last = await patchUpload(app.app, path, 5, ' world');
    expect(last.status).toBe(204);
    expect(last.headers.get('link')).toBe(`</uploads/${id}>; rel="status"`);
    // The queue is not started: every byte is here, processing has not begun.
    got = await status(app, id);
    expect(got.body).toMatchObject({ state: 'processing', offset: 11, length: 11, processors: {} });

    await app.startBackground();
    await app.state.queue.idle();
    got = await status(app, id);
    expect(got.body.state).toBe('done');
    expect(Object.keys(got.body.processors)).toEqual(['size', 'sha256', 'type', 'media', 'poster']);
    // Text is not probed (PROCESSORS' media and poster run for audio and video only).
    expect(got.body.processors.media?.result).toEqual({ skipped: 'not audio or video: no type was detected or declared' });
    expect(got.body.processors.poster?.result).toEqual({ skipped: 'not wanted' });
    expect(got.body.processors.sha256?.result).toEqual({ sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9', bytes: 11 });
  });

  it('answers from the status record alone once a rejected upload lost its bytes', async () => {
    const app = await testApp({ ALLOWED_TYPES: 'video/*', DELETE_REJECTED: 'true' });
    const { id, path } = await createFinishedUpload(app.app, Buffer.concat([Buffer.from('MZ'), Buffer.alloc(100)]), { filename: 'movie.mp4', filetype: 'video/mp4' });
    await app.startBackground();
    await app.state.queue.idle();
    const got = await status(app, id);
    expect(got.code).toBe(200);
    expect(got.body).toMatchObject({ id, state: 'rejected', offset: null, length: null, metadata: {}, uploadUrl: `/files/${id}` });
    expect(got.body.error).toContain('application/x-msdownload');
    expect((await app.app.request(path)).status).toBe(404);
  });
});

describe('CORS on the status resource', () => {
  it('lets an allowed browser origin read statuses and their errors, and no other origin', async () => {
    const app = await testApp({ CORS_ORIGINS: 'https://app.example.com' });
    const { id } = await createUpload(app.app, { 'Upload-Length': '5' });
    const ok = await app.app.request(`/uploads/${id}`, { headers: { Origin: 'https://app.example.com' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const missing = await app.app.request('/uploads/0123456789abcdef0123456789abcdef', { headers: { Origin: 'https://app.example.com' } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const events = await app.app.request('/uploads/0123456789abcdef0123456789abcdef/events', { headers: { Origin: 'https://app.example.com' } });
    expect(events.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const other = await app.app.request(`/uploads/${id}`, { headers: { Origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('GET /uploads/<id>/events', () => {
  it('streams each change from processing to done, then ends', async () => {
    const app = await testApp();
    const { id } = await createFinishedUpload(app.app, 'hello world');
    const res = await app.app.request(`/uploads/${id}/events`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    // The first event was described before the queue starts: the upload is waiting for processing.
    const reading = readEvents(res);
    await app.startBackground();
    const { events, ended } = await reading;
    expect(ended).toBe(true);
    expect(events.every((e) => e.event === 'status')).toBe(true);
    const states = events.map((e) => e.data.state);
    expect(states[0]).toBe('processing');
    expect(states.at(-1)).toBe('done');
    expect(states.slice(0, -1).every((s) => s === 'processing')).toBe(true);
    // No two consecutive events are the same.
    for (let i = 1; i < events.length; i += 1) expect(events[i]!.data).not.toEqual(events[i - 1]!.data);
    expect(events.at(-1)?.data.processors.sha256?.ok).toBe(true);
  });

  it('for a settled upload: one event, then the end', async () => {
    const app = await testApp();
    const { id } = await createFinishedUpload(app.app, 'abc');
    await app.startBackground();
    await app.state.queue.idle();
    const { events, ended } = await readEvents(await app.app.request(`/uploads/${id}/events`));
    expect(ended).toBe(true);
    expect(events.map((e) => e.data.state)).toEqual(['done']);
  });

  it('a client that goes away ends its stream: the subscription is dropped', async () => {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-status-state-'));
    try {
      const state = createProcessingState(parseConfig({ STORAGE_DIR: stateDir }), pino({ level: 'silent' }));
      let subscribed = 0;
      const statuses = {
        ...state.statuses,
        subscribe: (id: string, listener: Parameters<typeof state.statuses.subscribe>[1]) => {
          subscribed += 1;
          const unsubscribe = state.statuses.subscribe(id, listener);
          return () => {
            subscribed -= 1;
            unsubscribe();
          };
        },
      };
      const app = await testApp({}, { state: { queue: state.queue, statuses } });
      const { id } = await createFinishedUpload(app.app, 'abc');
      // The queue never starts: the upload stays "processing" and the stream stays open.
      const res = await app.app.request(`/uploads/${id}/events`);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      expect(first).toContain('"state":"processing"');
      await waitFor(() => subscribed === 1);
      await reader.cancel();
      await waitFor(() => subscribed === 0);
    } finally {
      await fs.rm(stateDir, { recursive: true, force: true });
    }
  });

  it('answers 404 (not a stream) for an unknown upload', async () => {
    const app = await testApp();
    const res = await app.app.request('/uploads/0123456789abcdef0123456789abcdef/events');
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/^ERR_UPLOAD_NOT_FOUND: /);
  });
});
