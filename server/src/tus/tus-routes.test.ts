import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import {
  advanceClock,
  createFinishedUpload,
  createUpload,
  encodeMetadata,
  fileExists,
  headUpload,
  OFFSET_STREAM,
  patchUpload,
  TUS,
} from '../testing/http-test-helpers.js';

const HOUR = 3_600_000;
const TUSD_BODY = /^ERR_[A-Z_]+: [^\n]+\n$/;

let t: TestApp;
const apps: TestApp[] = [];

async function newApp(env: Record<string, string> = {}): Promise<TestApp> {
  const app = await createTestApp(env);
  apps.push(app);
  return app;
}

beforeEach(async () => {
  t = await newApp();
});

afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

/** An error body in tusd's shape, with no stack trace and no path from this machine. */
async function expectTusdError(res: Response, status: number, code: string, storageDir = t.storageDir): Promise<string> {
  expect(res.status).toBe(status);
  const body = await res.text();
  expect(body).toMatch(TUSD_BODY);
  expect(body.startsWith(`${code}: `)).toBe(true);
  expect(body).not.toMatch(/\bat .+:\d+:\d+/);
  expect(body).not.toContain(storageDir);
  expect(body).not.toContain('/tmp/');
  expect(body).not.toContain('node_modules');
  return body;
}

describe('OPTIONS', () => {
  it('describes the server', async () => {
    for (const url of ['/files', '/files/', '/files/0123456789abcdef']) {
      const res = await t.app.request(url, { method: 'OPTIONS' });
      expect(res.status).toBe(204);
      expect(res.headers.get('tus-version')).toBe('1.0.0');
      expect(res.headers.get('tus-resumable')).toBe('1.0.0');
      expect(res.headers.get('tus-max-size')).toBe('2147483648');
      const extensions = res.headers.get('tus-extension')?.split(',') ?? [];
      for (const extension of ['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration', 'checksum', 'concatenation']) {
        expect(extensions).toContain(extension);
      }
      expect(await res.text()).toBe('');
    }
  });

  it('does not announce expiration when uploads never expire', async () => {
    const forever = await newApp({ UPLOAD_EXPIRY: '0' });
    const res = await forever.app.request('/files', { method: 'OPTIONS' });
    expect(res.headers.get('tus-extension')?.split(',')).not.toContain('expiration');
    expect(res.headers.get('tus-extension')?.split(',')).toContain('termination');
  });

  it('announces the configured maximum size', async () => {
    const small = await newApp({ MAX_UPLOAD_SIZE: '10MiB' });
    const res = await small.app.request('/files', { method: 'OPTIONS' });
    expect(res.headers.get('tus-max-size')).toBe(String(10 * 1024 * 1024));
  });

  it('answers a CORS preflight', async () => {
    const res = await t.app.request('/files', {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'POST' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-methods')).toContain('PATCH');
    expect(res.headers.get('access-control-allow-headers')).toContain('Upload-Offset');
  });
});

describe('POST (creation)', () => {
  it('creates an upload: 201, Location, Upload-Expires, and files on disk', async () => {
    const before = Date.now();
    const res = await t.app.request('http://localhost/files', {
      method: 'POST',
      headers: { ...TUS, Host: 'uploads.example.com', 'Upload-Length': '11', 'Upload-Metadata': encodeMetadata({ filename: 'a.txt' }) },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    const location = res.headers.get('location');
    expect(location).toMatch(/^http:\/\/uploads\.example\.com\/files\/[0-9a-f]{32}$/);
    const expires = Date.parse(res.headers.get('upload-expires') ?? '');
    expect(expires).toBeGreaterThanOrEqual(Math.floor((before + 24 * HOUR) / 1000) * 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 24 * HOUR);
    const id = location!.split('/').pop()!;
    expect(await fileExists(path.join(t.storageDir, id))).toBe(true);
    const record = JSON.parse(await fs.readFile(path.join(t.storageDir, `${id}.json`), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ id, size: 11, metadata: { filename: 'a.txt' } });
  });

  it('accepts the collection URL with a trailing slash', async () => {
    const res = await t.app.request('/files/', { method: 'POST', headers: { ...TUS, 'Upload-Length': '1' } });
    expect(res.status).toBe(201);
  });

  it('omits Upload-Expires when expiry is disabled', async () => {
    const forever = await newApp({ UPLOAD_EXPIRY: '0' });
    const { res } = await createUpload(forever.app, { 'Upload-Length': '5' });
    expect(res.headers.get('upload-expires')).toBeNull();
  });

  it('a zero-length upload is finished at once', async () => {
    const { path: uploadPath, res } = await createUpload(t.app, { 'Upload-Length': '0' });
    expect(res.headers.get('upload-expires')).toBeNull();
    const head = await headUpload(t.app, uploadPath);
    expect(head.headers.get('upload-offset')).toBe('0');
    expect(head.headers.get('upload-length')).toBe('0');
    const download = await t.app.request(uploadPath);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('');
  });

  it('refuses a size over the maximum with 413', async () => {
    const small = await newApp({ MAX_UPLOAD_SIZE: '1KiB' });
    const res = await small.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '1025' } });
    const body = await expectTusdError(res, 413, 'ERR_MAX_SIZE_EXCEEDED', small.storageDir);
    expect(body).toContain('1024 bytes');
  });
});

describe('creation-with-upload', () => {
  it('stores the body sent with the POST', async () => {
    const { res, path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '10' }, 'abcd');
    expect(res.headers.get('upload-offset')).toBe('4');
    expect(res.headers.get('upload-expires')).not.toBeNull();
    const head = await headUpload(t.app, uploadPath);
    expect(head.headers.get('upload-offset')).toBe('4');
    const patch = await patchUpload(t.app, uploadPath, 4, 'efghij');
    expect(patch.status).toBe(204);
    expect(patch.headers.get('upload-offset')).toBe('10');
    expect(await (await t.app.request(uploadPath)).text()).toBe('abcdefghij');
  });

  it('finishes an upload in a single request', async () => {
    const { res, path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '5' }, 'hello');
    expect(res.headers.get('upload-offset')).toBe('5');
    expect(res.headers.get('upload-expires')).toBeNull();
    expect(await (await t.app.request(uploadPath)).text()).toBe('hello');
  });

  it('also works with a Content-Type that has parameters', async () => {
    const { res, path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '5', 'Content-Type': `${OFFSET_STREAM}; charset=binary` }, 'hello');
    expect(res.headers.get('upload-offset')).toBe('5');
    expect(await (await t.app.request(uploadPath)).text()).toBe('hello');
  });

  it('refuses a body longer than Upload-Length without leaving an upload behind', async () => {
    const res = await t.app.request('/files', {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': '3', 'Content-Type': OFFSET_STREAM, 'Content-Length': '5' },
      body: 'hello',
    });
    await expectTusdError(res, 413, 'ERR_UPLOAD_SIZE_EXCEEDED');
    const entries = (await fs.readdir(t.storageDir)).filter((name) => !name.startsWith('.'));
    expect(entries).toEqual([]);
  });
});

describe('HEAD', () => {
  it('reports offset, length and metadata, and forbids caching', async () => {
    const metadata = encodeMetadata({ filename: 'clip.mp4', filetype: 'video/mp4' });
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '100', 'Upload-Metadata': metadata });
    const res = await headUpload(t.app, uploadPath);
    expect(res.status).toBe(200);
    expect(res.headers.get('upload-offset')).toBe('0');
    expect(res.headers.get('upload-length')).toBe('100');
    expect(res.headers.get('upload-metadata')).toBe(metadata);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect(res.headers.get('upload-defer-length')).toBeNull();
  });

  it('keeps a metadata key without a value', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '1', 'Upload-Metadata': 'is_confidential' });
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-metadata')).toBe('is_confidential');
  });

  it('answers 404 for an unknown upload, also without caching', async () => {
    const res = await headUpload(t.app, '/files/0123456789abcdef0123456789abcdef');
    expect(res.status).toBe(404);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
  });

  it('answers 404 with no-store for an id that cannot exist', async () => {
    const res = await headUpload(t.app, '/files/bad.id');
    expect(res.status).toBe(404);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const overridden = await t.app.request('/files/bad.id', { method: 'POST', headers: { ...TUS, 'X-HTTP-Method-Override': 'HEAD' } });
    expect(overridden.status).toBe(404);
    expect(overridden.headers.get('cache-control')).toBe('no-store');
  });

  it('omits Upload-Metadata for an upload created without metadata', async () => {
    // The header "MUST consist of one or more comma-separated key-value pairs"; tusd omits it.
    const creations: Record<string, string>[] = [{ 'Upload-Length': '3' }, { 'Upload-Length': '0' }, { 'Upload-Defer-Length': '1' }];
    for (const headers of creations) {
      const { path: uploadPath } = await createUpload(t.app, headers);
      const res = await headUpload(t.app, uploadPath);
      expect(res.status).toBe(200);
      expect(res.headers.has('upload-metadata')).toBe(false);
      expect(res.headers.get('upload-offset')).toBe('0');
    }
  });

  it('answers 412 with no-store when the version is missing', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '1' });
    const res = await t.app.request(uploadPath, { method: 'HEAD' });
    expect(res.status).toBe(412);
    expect(res.headers.get('tus-version')).toBe('1.0.0');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });
});

describe('PATCH', () => {
  it('appends bytes: 204 with the new offset and Upload-Expires while unfinished', async () => {
    const { path: uploadPath, res: created } = await createUpload(t.app, { 'Upload-Length': '11' });
    const first = await patchUpload(t.app, uploadPath, 0, 'hello ');
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-offset')).toBe('6');
    expect(first.headers.get('tus-resumable')).toBe('1.0.0');
    expect(first.headers.get('upload-expires')).toBe(created.headers.get('upload-expires'));
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-offset')).toBe('6');

    const last = await patchUpload(t.app, uploadPath, 6, 'world');
    expect(last.status).toBe(204);
    expect(last.headers.get('upload-offset')).toBe('11');
    expect(last.headers.get('upload-expires')).toBeNull();
    expect(await fs.readFile(path.join(t.storageDir, uploadPath.split('/').pop()!), 'utf8')).toBe('hello world');
  });

  it('answers 409 when the offset does not match, and changes nothing', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '10' });
    await patchUpload(t.app, uploadPath, 0, 'abc');
    for (const offset of [0, 2, 4, 9]) {
      await expectTusdError(await patchUpload(t.app, uploadPath, offset, 'xyz'), 409, 'ERR_MISMATCHED_OFFSET');
    }
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-offset')).toBe('3');
  });

  it('answers 404 for an unknown upload', async () => {
    await expectTusdError(await patchUpload(t.app, '/files/0123456789abcdef0123456789abcdef', 0, 'x'), 404, 'ERR_UPLOAD_NOT_FOUND');
  });

  it.each([
    ['no Content-Type', undefined],
    ['application/octet-stream', 'application/octet-stream'],
    ['text/plain', 'text/plain'],
  ])('answers 415 for %s', async (_label, contentType) => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '3' });
    const headers: Record<string, string> = { ...TUS, 'Upload-Offset': '0', 'Content-Length': '3' };
    if (contentType) headers['Content-Type'] = contentType;
    const res = await t.app.request(uploadPath, { method: 'PATCH', headers, body: 'abc' });
    await expectTusdError(res, 415, 'ERR_INVALID_CONTENT_TYPE');
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-offset')).toBe('0');
  });

  it('accepts the Content-Type with parameters', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '3' });
    const res = await patchUpload(t.app, uploadPath, 0, 'abc', { 'Content-Type': `${OFFSET_STREAM}; charset=binary` });
    expect(res.status).toBe(204);
    expect(res.headers.get('upload-offset')).toBe('3');
  });

  it('refuses a body that runs past Upload-Length with 413 and stores nothing of it', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '4' });
    await expectTusdError(await patchUpload(t.app, uploadPath, 0, 'abcdef'), 413, 'ERR_UPLOAD_SIZE_EXCEEDED');
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-offset')).toBe('0');
    const stat = await fs.stat(path.join(t.storageDir, uploadPath.split('/').pop()!));
    expect(stat.size).toBe(0);
  });

  it('answers 400 for a non-numeric Upload-Offset', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '4' });
    await expectTusdError(await patchUpload(t.app, uploadPath, 0, 'ab', { 'Upload-Offset': 'zero' }), 400, 'ERR_INVALID_OFFSET');
  });
});

describe('deferred length', () => {
  it('creates without a length and takes it on a later PATCH', async () => {
    const { path: uploadPath, res } = await createUpload(t.app, { 'Upload-Defer-Length': '1' });
    expect(res.headers.get('upload-expires')).not.toBeNull();
    let head = await headUpload(t.app, uploadPath);
    expect(head.headers.get('upload-defer-length')).toBe('1');
    expect(head.headers.get('upload-length')).toBeNull();
    expect(head.headers.get('upload-offset')).toBe('0');

    const first = await patchUpload(t.app, uploadPath, 0, 'abc');
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-offset')).toBe('3');
    head = await headUpload(t.app, uploadPath);
    expect(head.headers.get('upload-defer-length')).toBe('1');
    expect((await t.app.request(uploadPath)).status).toBe(409);

    const last = await patchUpload(t.app, uploadPath, 3, 'de', { 'Upload-Length': '5' });
    expect(last.status).toBe(204);
    expect(last.headers.get('upload-offset')).toBe('5');
    head = await headUpload(t.app, uploadPath);
    expect(head.headers.get('upload-length')).toBe('5');
    expect(head.headers.get('upload-defer-length')).toBeNull();
    expect(await (await t.app.request(uploadPath)).text()).toBe('abcde');
  });

  it('refuses to declare a length twice or below the offset', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Defer-Length': '1' });
    await patchUpload(t.app, uploadPath, 0, 'abcd');
    await expectTusdError(await patchUpload(t.app, uploadPath, 4, 'e', { 'Upload-Length': '2' }), 400, 'ERR_INVALID_UPLOAD_LENGTH');
    expect((await patchUpload(t.app, uploadPath, 4, 'e', { 'Upload-Length': '10' })).status).toBe(204);
    await expectTusdError(await patchUpload(t.app, uploadPath, 5, 'f', { 'Upload-Length': '12' }), 400, 'ERR_INVALID_UPLOAD_LENGTH');
  });
});

describe('DELETE (termination)', () => {
  it('removes the upload: 204, then HEAD 404 and the files are gone', async () => {
    const { path: uploadPath, id } = await createUpload(t.app, { 'Upload-Length': '10' });
    await patchUpload(t.app, uploadPath, 0, 'abc');
    const res = await t.app.request(uploadPath, { method: 'DELETE', headers: TUS });
    expect(res.status).toBe(204);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect((await headUpload(t.app, uploadPath)).status).toBe(404);
    expect(await fileExists(path.join(t.storageDir, id))).toBe(false);
    expect(await fileExists(path.join(t.storageDir, `${id}.json`))).toBe(false);
    await expectTusdError(await t.app.request(uploadPath, { method: 'DELETE', headers: TUS }), 404, 'ERR_UPLOAD_NOT_FOUND');
  });

  it('also removes a finished upload', async () => {
    const { path: uploadPath } = await createFinishedUpload(t.app, 'done');
    expect((await t.app.request(uploadPath, { method: 'DELETE', headers: TUS })).status).toBe(204);
    expect((await t.app.request(uploadPath)).status).toBe(404);
  });
});

describe('X-HTTP-Method-Override', () => {
  it('POST with override HEAD, PATCH and DELETE behaves as that method', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '6' });

    const head = await t.app.request(uploadPath, { method: 'POST', headers: { ...TUS, 'X-HTTP-Method-Override': 'HEAD' } });
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe('0');
    expect(head.headers.get('upload-length')).toBe('6');
    expect(head.headers.get('cache-control')).toBe('no-store');

    const patch = await t.app.request(uploadPath, {
      method: 'POST',
      headers: { ...TUS, 'X-HTTP-Method-Override': 'PATCH', 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '3' },
      body: 'abc',
    });
    expect(patch.status).toBe(204);
    expect(patch.headers.get('upload-offset')).toBe('3');
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-offset')).toBe('3');

    const mismatch = await t.app.request(uploadPath, {
      method: 'POST',
      headers: { ...TUS, 'X-HTTP-Method-Override': 'patch', 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '3' },
      body: 'abc',
    });
    await expectTusdError(mismatch, 409, 'ERR_MISMATCHED_OFFSET');

    const del = await t.app.request(uploadPath, { method: 'POST', headers: { ...TUS, 'X-HTTP-Method-Override': 'DELETE' } });
    expect(del.status).toBe(204);
    expect((await headUpload(t.app, uploadPath)).status).toBe(404);
  });

  it('applies the PATCH rules to an overridden PATCH', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '6' });
    const res = await t.app.request(uploadPath, {
      method: 'POST',
      headers: { ...TUS, 'X-HTTP-Method-Override': 'PATCH', 'Upload-Offset': '0', 'Content-Type': 'text/plain', 'Content-Length': '3' },
      body: 'abc',
    });
    await expectTusdError(res, 415, 'ERR_INVALID_CONTENT_TYPE');
  });

  it('an override to a method not allowed here is 405', async () => {
    const res = await t.app.request('/files', { method: 'POST', headers: { ...TUS, 'X-HTTP-Method-Override': 'DELETE' } });
    const body = await expectTusdError(res, 405, 'ERR_METHOD_NOT_ALLOWED');
    expect(body).toContain('DELETE');
    expect(res.headers.get('allow')).toBe('POST, OPTIONS');
  });
});

describe('Tus-Resumable', () => {
  it.each([
    ['POST', '/files', {}],
    ['HEAD', '/files/0123456789abcdef', {}],
    ['PATCH', '/files/0123456789abcdef', { 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '0' }],
    ['DELETE', '/files/0123456789abcdef', {}],
  ])('%s without it is 412 with Tus-Version', async (method, url, headers) => {
    const res = await t.app.request(url, { method, headers: { 'Upload-Length': '1', ...headers } });
    expect(res.status).toBe(412);
    expect(res.headers.get('tus-version')).toBe('1.0.0');
    if (method !== 'HEAD') await expectTusdError(res, 412, 'ERR_UNSUPPORTED_VERSION');
  });

  it('an unsupported version is 412 and nothing is created', async () => {
    const res = await t.app.request('/files', { method: 'POST', headers: { 'Tus-Resumable': '0.2.2', 'Upload-Length': '1' } });
    const body = await expectTusdError(res, 412, 'ERR_UNSUPPORTED_VERSION');
    expect(body).toContain('0.2.2');
    expect(res.headers.get('tus-version')).toBe('1.0.0');
    expect(res.headers.get('location')).toBeNull();
    expect((await fs.readdir(t.storageDir)).filter((name) => !name.startsWith('.'))).toEqual([]);
  });

  it('a download answers with Tus-Resumable, like every tus response but OPTIONS', async () => {
    const { path: uploadPath } = await createFinishedUpload(t.app, 'done');
    const ok = await t.app.request(uploadPath);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('tus-resumable')).toBe('1.0.0');
    const { path: unfinished } = await createUpload(t.app, { 'Upload-Length': '10' });
    const notFinished = await t.app.request(unfinished);
    expect(notFinished.status).toBe(409);
    expect(notFinished.headers.get('tus-resumable')).toBe('1.0.0');
    const missing = await t.app.request('/files/0123456789abcdef0123456789abcdef');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('tus-resumable')).toBe('1.0.0');
  });
});

describe('expiration', () => {
  it('an upload older than UPLOAD_EXPIRY answers 410 Gone to HEAD and PATCH', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '10' });
    await patchUpload(t.app, uploadPath, 0, 'abc');
    advanceClock(25 * HOUR);
    const head = await headUpload(t.app, uploadPath);
    expect(head.status).toBe(410);
    expect(head.headers.get('cache-control')).toBe('no-store');
    await expectTusdError(await patchUpload(t.app, uploadPath, 3, 'def'), 410, 'ERR_UPLOAD_GONE');
    // Not served as a download either.
    expect((await t.app.request(uploadPath)).status).toBeGreaterThanOrEqual(400);
  });

  it('expires by the clock with a short UPLOAD_EXPIRY', async () => {
    const quick = await newApp({ UPLOAD_EXPIRY: '1s' });
    const { path: uploadPath } = await createUpload(quick.app, { 'Upload-Length': '10' });
    expect((await patchUpload(quick.app, uploadPath, 0, 'ab')).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect((await headUpload(quick.app, uploadPath)).status).toBe(410);
    await expectTusdError(await patchUpload(quick.app, uploadPath, 2, 'cd'), 410, 'ERR_UPLOAD_GONE', quick.storageDir);
  });

  it('after the sweep the files are gone and HEAD, PATCH and GET answer 410 from the tombstone', async () => {
    const { path: uploadPath, id } = await createUpload(t.app, { 'Upload-Length': '10', 'Upload-Metadata': encodeMetadata({ filename: 'x.bin' }) });
    await patchUpload(t.app, uploadPath, 0, 'abc');
    advanceClock(25 * HOUR);

    expect(await t.sweeper.sweepOnce()).toBe(1);
    expect(await fileExists(path.join(t.storageDir, id))).toBe(false);
    expect(await fileExists(path.join(t.storageDir, `${id}.json`))).toBe(false);
    expect(await fileExists(path.join(t.storageDir, '.expired', id))).toBe(true);

    expect((await headUpload(t.app, uploadPath)).status).toBe(410);
    await expectTusdError(await patchUpload(t.app, uploadPath, 3, 'def'), 410, 'ERR_UPLOAD_GONE');
    await expectTusdError(await t.app.request(uploadPath), 410, 'ERR_UPLOAD_GONE');
    // The tombstone is not an upload.
    expect(await t.sweeper.sweepOnce()).toBe(0);
  });

  it('a finished upload older than the expiry is neither 410 nor swept', async () => {
    const { path: uploadPath, id } = await createFinishedUpload(t.app, 'finished!');
    advanceClock(30 * 24 * HOUR);

    const head = await headUpload(t.app, uploadPath);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe('9');
    expect(await t.sweeper.sweepOnce()).toBe(0);
    expect(await fileExists(path.join(t.storageDir, id))).toBe(true);
    expect(await fileExists(path.join(t.storageDir, `${id}.json`))).toBe(true);
    expect((await headUpload(t.app, uploadPath)).status).toBe(200);
    const download = await t.app.request(uploadPath);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('finished!');
  });

  it('a young unfinished upload survives the sweep', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '10' });
    advanceClock(23 * HOUR);
    expect(await t.sweeper.sweepOnce()).toBe(0);
    expect((await headUpload(t.app, uploadPath)).status).toBe(200);
  });

  it('UPLOAD_EXPIRY=0 keeps unfinished uploads forever', async () => {
    const forever = await newApp({ UPLOAD_EXPIRY: '0' });
    const { path: uploadPath, id } = await createUpload(forever.app, { 'Upload-Length': '10' });
    advanceClock(365 * 24 * HOUR);
    expect((await headUpload(forever.app, uploadPath)).status).toBe(200);
    const patch = await patchUpload(forever.app, uploadPath, 0, 'abc');
    expect(patch.status).toBe(204);
    expect(patch.headers.get('upload-expires')).toBeNull();
    expect(await forever.sweeper.sweepOnce()).toBe(0);
    expect(await fileExists(path.join(forever.storageDir, id))).toBe(true);
  });
});

describe('routing and errors', () => {
  it('an unknown path is a tusd-style 404', async () => {
    await expectTusdError(await t.app.request('/nope'), 404, 'ERR_NOT_FOUND');
    await expectTusdError(await t.app.request('/files/a/b', { method: 'PATCH', headers: TUS }), 404, 'ERR_NOT_FOUND');
  });

  it('mounts at a custom TUS_PATH', async () => {
    const custom = await newApp({ TUS_PATH: '/api/uploads/' });
    const res = await custom.app.request('http://localhost/api/uploads', { method: 'POST', headers: { ...TUS, Host: 'localhost', 'Upload-Length': '2' } });
    expect(res.status).toBe(201);
    const location = new URL(res.headers.get('location')!);
    expect(location.pathname).toMatch(/^\/api\/uploads\/[0-9a-f]{32}$/);
    expect((await custom.app.request(location.pathname, { method: 'HEAD', headers: TUS })).status).toBe(200);
    expect((await custom.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '2' } })).status).toBe(404);
  });

  it('honours X-Forwarded-Host/-Proto only with TRUST_PROXY', async () => {
    const forwarded = { ...TUS, Host: 'internal:8080', 'X-Forwarded-Host': 'uploads.example.com', 'X-Forwarded-Proto': 'https', 'Upload-Length': '1' };
    const plain = await t.app.request('http://internal:8080/files', { method: 'POST', headers: forwarded });
    expect(plain.headers.get('location')).toMatch(/^http:\/\/internal:8080\/files\//);
    const proxied = await newApp({ TRUST_PROXY: 'true' });
    const res = await proxied.app.request('http://internal:8080/files', { method: 'POST', headers: forwarded });
    expect(res.headers.get('location')).toMatch(/^https:\/\/uploads\.example\.com\/files\//);
  });

  it('a malformed header that only @tus/server checks still gets a tusd-style 400', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '4' });
    await expectTusdError(await patchUpload(t.app, uploadPath, 0, 'ab', { 'Upload-Offset': '00' }), 400, 'ERR_INVALID_REQUEST');
    await expectTusdError(await patchUpload(t.app, uploadPath, 0, 'ab', { 'X-Forwarded-Proto': 'gopher' }), 400, 'ERR_INVALID_REQUEST');
    await expectTusdError(await patchUpload(t.app, uploadPath, 0, 'ab', { 'Upload-Metadata': 'bad key here' }), 400, 'ERR_INVALID_REQUEST');
    expect((await headUpload(t.app, uploadPath)).headers.get('upload-offset')).toBe('0');
  });
});

describe('internal failures', () => {
  it('answer a generic tusd-style 500 that reveals nothing about the server', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '10' });
    // Storage breaks underneath: the directory becomes a file.
    await fs.rm(t.storageDir, { recursive: true, force: true });
    await fs.writeFile(t.storageDir, 'not a directory');
    for (const res of [
      await t.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '1' } }),
      await patchUpload(t.app, uploadPath, 0, 'abc'),
    ]) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      const body = await res.text();
      expect(body).toMatch(TUSD_BODY);
      expect(body).not.toContain(t.storageDir);
      expect(body).not.toMatch(/ENOTDIR|EEXIST|ENOENT|EACCES|\bat .+:\d+:\d+/);
      // Unexpected: the generic 500. A write the store refused: its own 503, retry later.
      if (res.status === 500) expect(body).toBe('ERR_INTERNAL_SERVER_ERROR: something went wrong on the server; the error has been logged\n');
      else if (res.status >= 500) expect([res.status, body, res.headers.get('retry-after')]).toEqual([503, 'ERR_STORAGE_UNAVAILABLE: storage could not write the upload; retry shortly\n', expect.any(String)]);
    }
    await fs.rm(t.storageDir, { force: true });
  });
});

describe('CORS on tus responses', () => {
  it('allows any origin by default', async () => {
    const res = await t.app.request('/files', { method: 'POST', headers: { ...TUS, Origin: 'https://a.example.com', 'Upload-Length': '1' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toContain('Upload-Offset');
    expect(res.headers.get('access-control-expose-headers')).toContain('Location');
    // The expiration extension's header, readable by a browser client.
    expect(res.headers.get('upload-expires')).not.toBeNull();
    expect(res.headers.get('access-control-expose-headers')).toContain('Upload-Expires');
  });

  it("lets a browser speak the IETF protocol: its request headers pass the preflight, its answers' headers are readable", async () => {
    const preflight = await t.app.request('/files', {
      method: 'OPTIONS',
      headers: { Origin: 'https://a.example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'upload-draft-interop-version, upload-complete, upload-length' },
    });
    const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const name of ['upload-draft-interop-version', 'upload-complete', 'upload-incomplete']) expect(allowed).toContain(name);
    const created = await t.app.request('/files', { method: 'POST', headers: { Origin: 'https://a.example.com', 'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?0' } });
    expect(created.status).toBe(201);
    const exposed = created.headers.get('access-control-expose-headers') ?? '';
    for (const name of ['Location', 'Upload-Complete', 'Upload-Limit', 'Upload-Offset']) expect(exposed).toContain(name);
  });

  it('errors we answer ourselves carry CORS headers too', async () => {
    const res = await t.app.request('/files', { method: 'POST', headers: { Origin: 'https://a.example.com', 'Upload-Length': '1' } });
    expect(res.status).toBe(412);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('with CORS_ORIGINS, echoes an allowed origin and never a foreign one', async () => {
    const strict = await newApp({ CORS_ORIGINS: 'https://app.example.com,https://admin.example.com' });
    const allowed = await strict.app.request('/files', { method: 'POST', headers: { ...TUS, Origin: 'https://admin.example.com', 'Upload-Length': '1' } });
    expect(allowed.status).toBe(201);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://admin.example.com');

    const foreign = await strict.app.request('/files', { method: 'POST', headers: { ...TUS, Origin: 'https://evil.example.com', 'Upload-Length': '1' } });
    expect(foreign.headers.get('access-control-allow-origin')).not.toBe('https://evil.example.com');
    expect(foreign.headers.get('access-control-allow-origin')).not.toBe('*');

    const rejected = await strict.app.request('/files', { method: 'POST', headers: { Origin: 'https://evil.example.com', 'Upload-Length': '1' } });
    expect(rejected.status).toBe(412);
    expect(rejected.headers.get('access-control-allow-origin')).toBeNull();
    const rejectedAllowed = await strict.app.request('/files', { method: 'POST', headers: { Origin: 'https://app.example.com', 'Upload-Length': '1' } });
    expect(rejectedAllowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });
});

describe('draining', () => {
  it('answers 503 with Retry-After once shutdown begins', async () => {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': '4' });
    t.lifecycle.beginShutdown();
    for (const res of [
      await t.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '1' } }),
      await patchUpload(t.app, uploadPath, 0, 'ab'),
      await t.app.request(uploadPath),
    ]) {
      await expectTusdError(res, 503, 'ERR_SERVER_SHUTTING_DOWN');
      expect(res.headers.get('retry-after')).toBe('5');
      expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    }
    expect((await t.app.request('/healthz')).status).toBe(200);
  });
});
