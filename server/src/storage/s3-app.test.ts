import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Env } from '../config.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, encodeMetadata, headUpload, patchUpload, TUS, waitFor } from '../testing/http-test-helpers.js';

// The whole app (tus protocol, downloads, processing, expiry sweep) on S3 storage.
// The endpoint comes from e2e/services/s3-global-setup.ts.
const s3 = inject('s3');

const s3Env = (overrides: Env = {}): Env => ({
  ...s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', S3_PREFIX: `app-${randomBytes(4).toString('hex')}/` }),
  ...overrides,
});

describe('the app on S3 storage', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(s3Env());
    await t.startBackground();
  });

  afterAll(async () => {
    await t?.cleanup();
  });

  it('uploads in two PATCHes across a part boundary, resumes from HEAD, serves the download and ranges', async () => {
    const data = randomBytes(6 * 1024 * 1024 + 5);
    const { path } = await createUpload(t.app, { 'Upload-Length': String(data.length), 'Upload-Metadata': encodeMetadata({ filename: 'clip.bin' }) });
    const first = await patchUpload(t.app, path, 0, data.subarray(0, 3 * 1024 * 1024));
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-expires')).toBeTruthy();
    const head = await headUpload(t.app, path);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe(String(3 * 1024 * 1024));
    const last = await patchUpload(t.app, path, 3 * 1024 * 1024, data.subarray(3 * 1024 * 1024));
    expect(last.status).toBe(204);
    expect(last.headers.get('upload-offset')).toBe(String(data.length));
    expect(last.headers.get('upload-expires')).toBeNull();

    const whole = await t.app.request(path, { headers: TUS });
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(data)).toBe(true);
    const range = await t.app.request(path, { headers: { ...TUS, Range: 'bytes=5242870-5242889' } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(data.subarray(5242870, 5242890))).toBe(true);
  });

  it('processes a finished upload to done with the right sha256', async () => {
    const content = Buffer.from('hello from s3');
    const { id, path } = await createUpload(t.app, { 'Upload-Length': String(content.length) });
    expect((await patchUpload(t.app, path, 0, content)).status).toBe(204);
    let status: { state?: string; processors?: { sha256?: { result?: { sha256?: string } } } } = {};
    await waitFor(async () => {
      status = (await (await t.app.request(`/uploads/${id}`)).json()) as typeof status;
      return status.state === 'done' || status.state === 'failed';
    }, { timeoutMs: 15_000 });
    expect(status.state).toBe('done');
    expect(JSON.stringify(status)).toContain(createHash('sha256').update(content).digest('hex'));
  });

  it('DELETE terminates an upload; it then answers 404', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Length': '100' });
    expect((await patchUpload(t.app, path, 0, 'abc')).status).toBe(204);
    const res = await t.app.request(path, { method: 'DELETE', headers: TUS });
    expect(res.status).toBe(204);
    expect((await headUpload(t.app, path)).status).toBe(404);
  });

  it('an empty upload is finished at once and downloads as empty', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Length': '0' });
    const res = await t.app.request(path, { headers: TUS });
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });
});

describe('expiry on S3 storage', () => {
  it('the sweep removes an expired unfinished upload, which then answers 410; a finished one stays', async () => {
    const t = await createTestApp(s3Env({ UPLOAD_EXPIRY: '1s' }));
    try {
      const unfinished = await createUpload(t.app, { 'Upload-Length': '10' });
      expect((await patchUpload(t.app, unfinished.path, 0, 'abc')).status).toBe(204);
      const finished = await createUpload(t.app, { 'Upload-Length': '3' });
      expect((await patchUpload(t.app, finished.path, 0, 'xyz')).status).toBe(204);
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      expect(await t.sweeper.sweepOnce()).toBe(1);
      expect((await headUpload(t.app, unfinished.path)).status).toBe(410);
      const download = await t.app.request(finished.path, { headers: TUS });
      expect(download.status).toBe(200);
      expect(await download.text()).toBe('xyz');
    } finally {
      await t.cleanup();
    }
  });
});
