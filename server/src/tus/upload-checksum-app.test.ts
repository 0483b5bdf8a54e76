import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import type { Env } from '../config.js';
import { createTestApp, startTestServer, type TestApp } from '../testing/create-test-app.js';
import { buildRequest, createUpload, headUpload, OFFSET_STREAM, openRawConnection, patchUpload, rawRequest, TUS, waitFor } from '../testing/http-test-helpers.js';
import { CHECKSUM_ALGORITHMS } from './checksum-algorithms.js';
import { STAGING_DIR } from './checksum-staging.js';

const KiB = 1024;
const TUSD_BODY = /^ERR_[A-Z_]+: [^\n]+\n$/;

const checksum = (algorithm: string, data: Uint8Array) => `${algorithm} ${createHash(algorithm).update(data).digest('base64')}`;

/** A checksum of the right length that is not the body's. */
const wrongChecksum = (algorithm: string, data: Uint8Array) => checksum(algorithm, Buffer.concat([data, Buffer.from('!')]));

const envFor = (kind: 'file' | 's3', overrides: Env = {}): Env =>
  kind === 's3'
    ? { ...s3ServerEnv(inject('s3'), { S3_PART_SIZE: '5MiB', S3_PREFIX: `checksum-${randomBytes(4).toString('hex')}/` }), ...overrides }
    : overrides;

/** A chunked request body with the given trailers (raw bytes: Node's clients hide this). */
function chunkedWithTrailers(data: Buffer, trailers: Record<string, string>): Buffer {
  const pieces = [data.subarray(0, data.length >> 1), data.subarray(data.length >> 1)].filter((piece) => piece.length > 0);
  const parts = pieces.flatMap((piece) => [Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
  const tail = Object.entries(trailers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return Buffer.concat([...parts, Buffer.from(`0\r\n${tail}\r\n`)]);
}

describe.each(['file', 's3'] as const)('[%s] Upload-Checksum through the app', (kind) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(envFor(kind));
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const offsetOf = async (uploadPath: string) => Number((await headUpload(t.app, uploadPath)).headers.get('upload-offset'));
  const download = async (uploadPath: string) => Buffer.from(await (await t.app.request(uploadPath, { headers: TUS })).arrayBuffer());
  const staged = async () => fs.readdir(path.join(t.storageDir, STAGING_DIR)).catch(() => []);

  /** What the store holds of an unfinished upload, counted by the store where it can be. */
  async function expectStored(id: string, uploadPath: string, bytes: number): Promise<void> {
    expect(await offsetOf(uploadPath)).toBe(bytes);
    if (kind === 'file') expect((await fs.stat(path.join(t.storageDir, id))).size).toBe(bytes);
  }

  it('advertises checksum, checksum-trailer and its algorithms on OPTIONS', async () => {
    for (const url of ['/files', `/files/${'a'.repeat(32)}`]) {
      const res = await t.app.request(url, { method: 'OPTIONS' });
      expect(res.status).toBe(204);
      const extensions = res.headers.get('tus-extension')?.split(',') ?? [];
      expect(extensions).toContain('checksum');
      expect(extensions).toContain('checksum-trailer');
      expect(res.headers.get('tus-checksum-algorithm')).toBe('md5,sha1,sha256,sha512');
    }
    // A browser's preflight before a PATCH with Upload-Checksum, and a page reading the algorithms.
    const preflight = await t.app.request('/files', {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'PATCH', 'Access-Control-Request-Headers': 'tus-resumable,upload-offset,upload-checksum' },
    });
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase().split(', ')).toContain('upload-checksum');
    expect(preflight.headers.get('access-control-expose-headers')).toContain('Tus-Checksum-Algorithm');
  });

  it('takes a PATCH whose checksum matches, for every algorithm', async () => {
    const data = randomBytes(4 * 40 * KiB);
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': String(data.length) });
    for (const [index, algorithm] of CHECKSUM_ALGORITHMS.entries()) {
      const chunk = data.subarray(index * 40 * KiB, (index + 1) * 40 * KiB);
      const res = await patchUpload(t.app, uploadPath, index * 40 * KiB, chunk, { 'Upload-Checksum': checksum(algorithm, chunk) });
      expect(res.status, await res.text()).toBe(204);
      expect(res.headers.get('upload-offset')).toBe(String((index + 1) * 40 * KiB));
    }
    expect((await download(uploadPath)).equals(data)).toBe(true);
    expect(await staged()).toEqual([]);
  });

  it('answers 460 to a mismatch, stores none of it, and takes the right bytes afterwards', async () => {
    const data = randomBytes(200 * KiB);
    const { id, path: uploadPath } = await createUpload(t.app, { 'Upload-Length': String(data.length) });
    const first = data.subarray(0, 100 * KiB);
    expect((await patchUpload(t.app, uploadPath, 0, first, { 'Upload-Checksum': checksum('sha256', first) })).status).toBe(204);

    const second = data.subarray(100 * KiB);
    const corrupted = Buffer.from(second);
    corrupted[1234] = (corrupted[1234] ?? 0) ^ 0x01;
    const res = await patchUpload(t.app, uploadPath, 100 * KiB, corrupted, { 'Upload-Checksum': checksum('sha256', second) });
    expect(res.status).toBe(460);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const body = await res.text();
    expect(body).toMatch(TUSD_BODY);
    expect(body.startsWith('ERR_CHECKSUM_MISMATCH: ')).toBe(true);
    await expectStored(id, uploadPath, 100 * KiB);
    expect(await staged()).toEqual([]);

    const retry = await patchUpload(t.app, uploadPath, 100 * KiB, second, { 'Upload-Checksum': checksum('sha256', second) });
    expect(retry.status).toBe(204);
    expect(retry.headers.get('upload-offset')).toBe(String(data.length));
    expect((await download(uploadPath)).equals(data)).toBe(true);
  });

  it('verifies a creation-with-upload body: 460 creates nothing, a match creates and stores it', async () => {
    const data = randomBytes(50 * KiB);
    const bad = await t.app.request('http://localhost/files', {
      method: 'POST',
      headers: { ...TUS, Host: 'localhost', 'Upload-Length': String(2 * data.length), 'Content-Type': OFFSET_STREAM, 'Upload-Checksum': wrongChecksum('sha1', data) },
      body: new Uint8Array(data),
    });
    expect(bad.status).toBe(460);
    expect(bad.headers.get('location')).toBeNull();
    expect((await bad.text()).startsWith('ERR_CHECKSUM_MISMATCH: ')).toBe(true);

    const { res, id, path: uploadPath } = await createUpload(t.app, { 'Upload-Length': String(2 * data.length), 'Upload-Checksum': checksum('sha1', data) }, data);
    expect(res.headers.get('upload-offset')).toBe(String(data.length));
    await expectStored(id, uploadPath, data.length);
  });

  const sample = Buffer.from('some bytes');
  it.each([
    ['no space', `sha1${createHash('sha1').update(sample).digest('base64')}`, 'ERR_INVALID_CHECKSUM'],
    ['bad base64', 'sha1 ***not-base64***', 'ERR_INVALID_CHECKSUM'],
    ['a digest of the wrong length', `sha256 ${createHash('sha1').update(sample).digest('base64')}`, 'ERR_INVALID_CHECKSUM'],
    ['an empty value', '', 'ERR_INVALID_CHECKSUM'],
    ['an unsupported algorithm', `crc32 ${Buffer.alloc(4).toString('base64')}`, 'ERR_UNSUPPORTED_CHECKSUM_ALGORITHM'],
  ])('answers 400 to %s and stores nothing', async (_label, value, code) => {
    const { id, path: uploadPath } = await createUpload(t.app, { 'Upload-Length': String(sample.length) });
    const res = await patchUpload(t.app, uploadPath, 0, sample, { 'Upload-Checksum': value });
    expect(res.status).toBe(400);
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    const body = await res.text();
    expect(body).toMatch(TUSD_BODY);
    expect(body.startsWith(`${code}: `)).toBe(true);
    await expectStored(id, uploadPath, 0);
  });

  it('clears staged files a crashed process left behind, at its first staging', async () => {
    // A fresh app: its staging has not started yet.
    const fresh = await createTestApp(envFor(kind));
    try {
      const directory = path.join(fresh.storageDir, STAGING_DIR);
      await fs.mkdir(directory, { recursive: true });
      const old = new Date(Date.now() - 3_600_000);
      await fs.writeFile(path.join(directory, 'left-by-a-crash'), 'x');
      await fs.utimes(path.join(directory, 'left-by-a-crash'), old, old);
      await fs.writeFile(path.join(directory, 'being-written'), 'x');
      const data = Buffer.from('fresh bytes');
      const { path: uploadPath } = await createUpload(fresh.app, { 'Upload-Length': String(data.length) });
      expect((await patchUpload(fresh.app, uploadPath, 0, data, { 'Upload-Checksum': checksum('md5', data) })).status).toBe(204);
      await waitFor(async () => !(await fs.readdir(directory)).includes('left-by-a-crash'));
      expect(await fs.readdir(directory)).toEqual(['being-written']);
    } finally {
      await fresh.cleanup();
    }
  });

  it('a PATCH without the header is not staged', async () => {
    const data = randomBytes(10 * KiB);
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': String(data.length) });
    await fs.rm(path.join(t.storageDir, STAGING_DIR), { recursive: true, force: true });
    expect((await patchUpload(t.app, uploadPath, 0, data)).status).toBe(204);
    await expect(fs.stat(path.join(t.storageDir, STAGING_DIR))).rejects.toThrow();
  });
});

describe.each(['file', 's3'] as const)('[%s] Upload-Checksum over a socket', (kind) => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let port: number;

  beforeAll(async () => {
    server = await startTestServer(envFor(kind, { MAX_UPLOAD_SIZE: '1MiB' }));
    port = server.running.port;
  });
  afterAll(async () => {
    await server?.close();
  });

  const offsetOf = async (uploadPath: string) => Number((await headUpload(server.app, uploadPath)).headers.get('upload-offset'));
  const staged = async () => fs.readdir(path.join(server.storageDir, STAGING_DIR)).catch(() => []);
  const chunkedPatch = (uploadPath: string, offset: number, headers: Record<string, string>, body: Buffer) =>
    rawRequest(port, buildRequest('PATCH', uploadPath, { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': OFFSET_STREAM, 'Transfer-Encoding': 'chunked', ...headers }, body));

  it('checksum-trailer: verifies the trailer of a chunked PATCH', async () => {
    const data = randomBytes(64 * KiB);
    const { path: uploadPath } = await createUpload(server.app, { 'Upload-Length': String(2 * data.length) });

    const wrong = await chunkedPatch(uploadPath, 0, { Trailer: 'Upload-Checksum' }, chunkedWithTrailers(data, { 'Upload-Checksum': wrongChecksum('md5', data) }));
    expect(wrong.status).toBe(460);
    expect(wrong.body.startsWith('ERR_CHECKSUM_MISMATCH: ')).toBe(true);
    expect(await offsetOf(uploadPath)).toBe(0);

    const missing = await chunkedPatch(uploadPath, 0, { Trailer: 'Upload-Checksum' }, chunkedWithTrailers(data, {}));
    expect(missing.status).toBe(400);
    expect(missing.body.startsWith('ERR_INVALID_CHECKSUM: ')).toBe(true);

    const malformed = await chunkedPatch(uploadPath, 0, { Trailer: 'Upload-Checksum' }, chunkedWithTrailers(data, { 'Upload-Checksum': 'sha1' }));
    expect(malformed.status).toBe(400);
    expect(await offsetOf(uploadPath)).toBe(0);

    const right = await chunkedPatch(uploadPath, 0, { Trailer: 'Upload-Checksum' }, chunkedWithTrailers(data, { 'Upload-Checksum': checksum('sha512', data) }));
    expect(right.status, right.body).toBe(204);
    expect(right.headers['upload-offset']).toBe(String(data.length));
    expect(await staged()).toEqual([]);
  });

  it('checksum-trailer: a trailer announced on a body with Content-Length is 400', async () => {
    const { path: uploadPath } = await createUpload(server.app, { 'Upload-Length': '5' });
    const res = await rawRequest(port, buildRequest('PATCH', uploadPath, { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '5', Trailer: 'Upload-Checksum' }, 'hello'));
    expect(res.status).toBe(400);
    expect(res.body.startsWith('ERR_INVALID_CHECKSUM: ')).toBe(true);
    expect(await offsetOf(uploadPath)).toBe(0);
  });

  it('a chunked body growing past the size limit while staged is 413, and nothing is stored', async () => {
    const { path: uploadPath } = await createUpload(server.app, { 'Upload-Length': String(1024 * KiB) });
    const data = randomBytes(1100 * KiB);
    const res = await chunkedPatch(uploadPath, 0, { 'Upload-Checksum': checksum('sha1', data) }, chunkedWithTrailers(data, {}));
    expect(res.status).toBe(413);
    expect(res.body.startsWith('ERR_MAX_SIZE_EXCEEDED: ')).toBe(true);
    expect(await offsetOf(uploadPath)).toBe(0);
    await waitFor(async () => (await staged()).length === 0);
  });

  it('a client gone mid-body: nothing is appended and the staged file is removed', async () => {
    const data = randomBytes(256 * KiB);
    const { id, path: uploadPath } = await createUpload(server.app, { 'Upload-Length': String(data.length) });
    const { socket, response } = openRawConnection(port, { timeoutMs: 5_000 });
    socket.write(buildRequest('PATCH', uploadPath, { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': String(data.length), 'Upload-Checksum': checksum('sha256', data) }, data.subarray(0, 100 * KiB)));
    // The body is being staged: its file exists and holds what arrived.
    await waitFor(async () => (await staged()).length === 1);
    socket.destroy();
    await response.catch(() => undefined);
    await waitFor(async () => (await staged()).length === 0);
    expect(await offsetOf(uploadPath)).toBe(0);
    if (kind === 'file') expect((await fs.stat(path.join(server.storageDir, id))).size).toBe(0);
    // The upload is not locked by the request that went away.
    const res = await patchUpload(server.app, uploadPath, 0, data, { 'Upload-Checksum': checksum('sha256', data) });
    expect(res.status).toBe(204);
  });
});
