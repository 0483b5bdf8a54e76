import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../app.js';
import { parseConfig, type Env } from '../config.js';
import { createStorage } from '../storage/index.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, patchUpload, TUS } from '../testing/http-test-helpers.js';

/**
 * The per-subject limits through the whole app (no socket: with authentication off the subject
 * is the client address, here X-Forwarded-For with TRUST_PROXY, or "unknown" for all).
 */

const apps: TestApp[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((t) => t.cleanup()));
});

/** Every limit off but the one under test. */
const NONE: Env = { MAX_UPLOADS_IN_PROGRESS: '0', MAX_CREATIONS_PER_MINUTE: '0', MAX_UNFINISHED_BYTES: '0', MAX_EVENT_STREAMS: '0' };

async function app(env: Env): Promise<TestApp> {
  const t = await createTestApp({ ...NONE, ...env });
  apps.push(t);
  return t;
}

function post(t: TestApp, length: number, headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(t.app.request('http://localhost/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': String(length), ...headers } }));
}

async function expectLimited(res: Response, limit: string): Promise<number> {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(res.headers.get('tus-resumable')).toBe('1.0.0');
  expect(await res.text()).toMatch(new RegExp(`^ERR_RATE_LIMITED: ${limit}: `));
  return retryAfter;
}

describe('uploads in progress (MAX_UPLOADS_IN_PROGRESS)', () => {
  it('refuses a third unfinished upload with 429 and Retry-After; finishing or deleting one frees a slot', async () => {
    const t = await app({ MAX_UPLOADS_IN_PROGRESS: '2' });
    const first = await createUpload(t.app, { 'Upload-Length': '5' });
    const second = await createUpload(t.app, { 'Upload-Length': '5' });
    await expectLimited(await post(t, 5), 'uploads-in-progress');
    // Nothing was stored for the refused creation.
    expect((await t.sweeper.sweepOnce())).toBe(0);

    expect((await patchUpload(t.app, first.path, 0, 'hello')).status).toBe(204);
    const third = await post(t, 5);
    expect(third.status).toBe(201);
    await expectLimited(await post(t, 5), 'uploads-in-progress');

    expect((await t.app.request(second.path, { method: 'DELETE', headers: TUS })).status).toBe(204);
    expect((await post(t, 5)).status).toBe(201);
  });

  it('an empty upload (finished at creation) takes no slot', async () => {
    const t = await app({ MAX_UPLOADS_IN_PROGRESS: '1' });
    for (let i = 0; i < 3; i += 1) expect((await post(t, 0)).status).toBe(201);
    expect((await post(t, 5)).status).toBe(201);
    await expectLimited(await post(t, 5), 'uploads-in-progress');
  });

  it('counts per client address: another client is not held back', async () => {
    const t = await app({ MAX_UPLOADS_IN_PROGRESS: '1', TRUST_PROXY: 'true' });
    expect((await post(t, 5, { 'X-Forwarded-For': '192.0.2.1' })).status).toBe(201);
    await expectLimited(await post(t, 5, { 'X-Forwarded-For': '192.0.2.1, 10.0.0.1' }), 'uploads-in-progress');
    expect((await post(t, 5, { 'X-Forwarded-For': '192.0.2.2' })).status).toBe(201);
  });

  it('a creation the pre-create hook refuses takes no slot', async () => {
    let refuse = true;
    const t = await createTestApp({ ...NONE, MAX_UPLOADS_IN_PROGRESS: '1' }, { hooks: { 'pre-create': () => (refuse ? { reject: { status: 400, message: 'no' } } : undefined) } });
    apps.push(t);
    for (let i = 0; i < 3; i += 1) expect((await post(t, 5)).status).toBe(400);
    refuse = false;
    expect((await post(t, 5)).status).toBe(201);
  });
});

describe('a creation the store cannot write', () => {
  it('takes no slot: the upload was admitted, then nothing was stored', async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-limits-store-'));
    try {
      const config = parseConfig({ ...NONE, STORAGE_DIR: directory, LOG_LEVEL: 'silent', MAX_UPLOADS_IN_PROGRESS: '1' });
      const storage = await createStorage(config);
      // The disk refuses the upload's files (a full disk between the free-space check and the write).
      const create = storage.datastore.create.bind(storage.datastore);
      let failing = true;
      storage.datastore.create = async (upload) => {
        if (failing) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        return create(upload);
      };
      const { app } = createApp(config, { storage, logger: pino({ level: 'silent' }) });
      const attempt = () => app.request('http://localhost/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '5' } });
      for (let i = 0; i < 3; i += 1) expect((await attempt()).status).toBeGreaterThanOrEqual(500);
      failing = false;
      expect((await attempt()).status).toBe(201);
      expect((await attempt()).status).toBe(429);
    } finally {
      await fs.rm(directory, { recursive: true, force: true });
    }
  });
});

describe('creations per minute (MAX_CREATIONS_PER_MINUTE)', () => {
  it('refuses the fourth creation of a minute with a Retry-After that ends with the minute', async () => {
    const t = await app({ MAX_CREATIONS_PER_MINUTE: '3' });
    // A run that straddles a minute boundary starts a new window halfway: try again once.
    for (let round = 0; round < 2; round += 1) {
      const minute = Math.floor(Date.now() / 60_000);
      const answers = [];
      for (let i = 0; i < 4; i += 1) answers.push(await post(t, 0));
      if (Math.floor(Date.now() / 60_000) !== minute) continue;
      expect(answers.slice(0, 3).map((r) => r.status)).toEqual([201, 201, 201]);
      const retryAfter = await expectLimited(answers[3]!, 'creations-per-minute');
      expect(retryAfter).toBeLessThanOrEqual(60 - (Math.floor(Date.now() / 1000) % 60) + 1);
      return;
    }
    throw new Error('two runs straddled a minute boundary');
  });
});

describe('the IETF protocol', () => {
  it('counts against the same limits: a creation over them answers 429 with Retry-After', async () => {
    const t = await app({ MAX_UPLOADS_IN_PROGRESS: '1' });
    const ietf = (complete: boolean) =>
      t.app.request('http://localhost/files', { method: 'POST', headers: { 'Upload-Draft-Interop-Version': '8', 'Upload-Complete': complete ? '?1' : '?0', 'Upload-Length': '10', 'Content-Length': '0' } });
    expect((await ietf(false)).status).toBe(201);
    const refused = await ietf(false);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // A tus creation by the same client is held back too.
    await expectLimited(await post(t, 5), 'uploads-in-progress');
  });
});

describe('unfinished bytes (MAX_UNFINISHED_BYTES)', () => {
  it('refuses an upload whose declared length would take the unfinished total past the limit', async () => {
    const t = await app({ MAX_UNFINISHED_BYTES: '1000' });
    const first = await createUpload(t.app, { 'Upload-Length': '600' });
    await expectLimited(await post(t, 600), 'unfinished-bytes');
    expect((await post(t, 400)).status).toBe(201);
    await expectLimited(await post(t, 1), 'unfinished-bytes');
    // Once the first is finished, its bytes no longer count.
    expect((await patchUpload(t.app, first.path, 0, Buffer.alloc(600, 1))).status).toBe(204);
    expect((await post(t, 600)).status).toBe(201);
  });
});

describe('event streams (MAX_EVENT_STREAMS)', () => {
  it('refuses a second open stream with 429; closing the first frees its slot', async () => {
    const t = await app({ MAX_EVENT_STREAMS: '1' });
    const { id } = await createUpload(t.app, { 'Upload-Length': '5' });
    const first = await t.app.request(`/uploads/${id}/events`);
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: status');

    await expectLimitedStream(await t.app.request(`/uploads/${id}/events`));

    await reader.cancel();
    let again: Response | undefined;
    for (let i = 0; i < 100; i += 1) {
      again = await t.app.request(`/uploads/${id}/events`);
      if (again.status === 200) break;
      await again.text();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(again?.status).toBe(200);
    await again?.body?.cancel();
  });
});

async function expectLimitedStream(res: Response): Promise<void> {
  expect(res.status).toBe(429);
  expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(await res.text()).toMatch(/^ERR_RATE_LIMITED: event-streams: /);
}

describe('defaults', () => {
  it('a small team never meets them: a folder of 90 files created at once, then each finished, then 300 more small ones', async () => {
    const t = await createTestApp();
    apps.push(t);
    const created = [];
    for (let i = 0; i < 90; i += 1) created.push(await createUpload(t.app, { 'Upload-Length': '3' }));
    for (const { path } of created) expect((await patchUpload(t.app, path, 0, 'abc')).status).toBe(204);
    for (let i = 0; i < 300; i += 1) expect((await post(t, 0)).status).toBe(201);
  });
});
