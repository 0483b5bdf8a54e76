import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import type { Env } from '../config.js';
import type { HookEvent } from '../hooks/types.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload as createTusUpload, idFromLocation, OFFSET_STREAM, TUS, waitFor } from '../testing/http-test-helpers.js';
import type { InteropVersion } from './interop-versions.js';

/**
 * The IETF front-end through the app, for each interop version a client sends today, on both
 * stores: requests shaped as each draft says, the answers its version defines, and the same
 * hooks and processing as a tus upload.
 */

const s3 = inject('s3');
const STORES: readonly (readonly [string, () => Env])[] = [
  ['file', () => ({})],
  ['s3', () => s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', S3_PREFIX: `ietf-${randomBytes(4).toString('hex')}/` })],
];
const VERSIONS: readonly InteropVersion[] = [3, 5, 6, 7, 8];
const MAX = 1024;

const interop = (version: number) => ({ 'Upload-Draft-Interop-Version': String(version) });
const completeness = (version: number, complete: boolean): Record<string, string> =>
  version === 3 ? { 'Upload-Incomplete': complete ? '?0' : '?1' } : { 'Upload-Complete': complete ? '?1' : '?0' };
const isCompleteHeader = (version: number, res: Response) =>
  version === 3 ? res.headers.get('upload-incomplete') === '?0' : res.headers.get('upload-complete') === '?1';
const partialUpload = (version: number): Record<string, string> => (version >= 6 ? { 'Content-Type': 'application/partial-upload' } : {});

describe.each(STORES)('[%s] IETF resumable uploads', (_kind, storeEnv) => {
  let t: TestApp;
  const events: HookEvent[] = [];
  const count = (type: HookEvent['type'], id: string) => events.filter((event) => event.type === type && event.upload.id === id).length;

  beforeAll(async () => {
    t = await createTestApp(
      { ...storeEnv(), MAX_UPLOAD_SIZE: String(MAX), UPLOAD_EXPIRY: '1h' },
      { hooks: { 'post-create': (event) => void events.push(event), 'post-finish': (event) => void events.push(event) } },
    );
    await t.startBackground();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const request = (path: string, init: RequestInit & { headers?: Record<string, string> }) =>
    t.app.request(`http://localhost${path}`, { ...init, headers: { Host: 'localhost', ...init.headers } });

  async function create(version: number, complete: boolean, headers: Record<string, string> = {}, body?: string) {
    const res = await request('/files', {
      method: 'POST',
      headers: { ...interop(version), ...completeness(version, complete), ...(body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }), ...headers },
      ...(body === undefined ? {} : { body }),
    });
    const location = res.headers.get('location');
    return { res, id: location ? idFromLocation(location) : '' };
  }

  const append = (version: number, id: string, offset: number, body: string, complete: boolean, headers: Record<string, string> = {}) =>
    request(`/files/${id}`, {
      method: 'PATCH',
      headers: { ...interop(version), ...partialUpload(version), ...completeness(version, complete), 'Upload-Offset': String(offset), 'Content-Length': String(Buffer.byteLength(body)), ...headers },
      body,
    });

  const head = (version: number, id: string) => request(`/files/${id}`, { method: 'HEAD', headers: interop(version) });

  async function processed(id: string): Promise<void> {
    await waitFor(async () => ((await (await request(`/uploads/${id}`, { method: 'GET' })).json()) as { state?: string }).state === 'done', { timeoutMs: 20_000 });
  }

  describe.each(VERSIONS)('interop version %i', (version) => {
    it('creates an empty upload, appends in pieces, reports the offset, finishes once and processes it', async () => {
      const { res, id } = await create(version, false, { 'Upload-Length': '11' });
      expect(res.status).toBe(201);
      expect(res.headers.get('upload-draft-interop-version')).toBe(String(version));
      expect(res.headers.get('upload-offset')).toBe('0');
      expect(isCompleteHeader(version, res)).toBe(false);
      if (version >= 6) expect(res.headers.get('upload-limit')).toMatch(new RegExp(`max-size=${MAX}, ${version === 6 ? 'expires' : 'max-age'}=\\d+`));
      else expect(res.headers.get('upload-limit')).toBeNull();

      const first = await append(version, id, 0, 'hello ', false);
      expect(first.status).toBe(204);
      expect(first.headers.get('upload-offset')).toBe('6');
      expect(isCompleteHeader(version, first)).toBe(false);

      const offset = await head(version, id);
      expect(offset.status).toBe(204);
      expect(offset.headers.get('upload-offset')).toBe('6');
      expect(offset.headers.get('upload-length')).toBe('11');
      expect(offset.headers.get('cache-control')).toBe('no-store');

      const last = await append(version, id, 6, 'world', true);
      expect(last.status).toBe(204);
      expect(last.headers.get('upload-offset')).toBe('11');
      expect(isCompleteHeader(version, last)).toBe(true);
      expect(last.headers.get('link')).toBe(`</uploads/${id}>; rel="status"`);

      expect(isCompleteHeader(version, await head(version, id))).toBe(true);
      const download = await request(`/files/${id}`, { method: 'GET' });
      expect(await download.text()).toBe('hello world');
      await processed(id);
      expect(count('post-create', id)).toBe(1);
      expect(count('post-finish', id)).toBe(1);
    });

    it('creates an upload with its whole content in one request', async () => {
      const { res, id } = await create(version, true, {}, 'all at once');
      expect(res.status).toBe(201);
      expect(res.headers.get('upload-offset')).toBe('11');
      expect(isCompleteHeader(version, res)).toBe(true);
      await processed(id);
      expect(count('post-finish', id)).toBe(1);
      // An empty append at the end of a complete upload finishes nothing again.
      const again = await request(`/files/${id}`, { method: 'PATCH', headers: { ...interop(version), ...partialUpload(version), ...completeness(version, true), 'Upload-Offset': '11' } });
      expect(again.status).toBe(204);
      // More bytes to a complete upload: refused.
      const more = await append(version, id, 11, 'x', true);
      expect(more.status).toBe(400);
      if (version >= 6) expect(((await more.json()) as { type: string }).type).toBe('https://iana.org/assignments/http-problem-types#completed-upload');
      expect(count('post-finish', id)).toBe(1);
    });

    it('creates with part of the content and no length, and learns the length from the completing append', async () => {
      const { res, id } = await create(version, false, {}, 'part one,');
      expect(res.status).toBe(201);
      expect(res.headers.get('upload-offset')).toBe('9');
      expect(res.headers.get('upload-length')).toBeNull();
      const last = await append(version, id, 9, ' part two', true);
      expect(last.status).toBe(204);
      const offset = await head(version, id);
      expect(offset.headers.get('upload-length')).toBe('18');
      expect(isCompleteHeader(version, offset)).toBe(true);
      await processed(id);
    });

    it('answers a mismatched offset with 409 and the correct Upload-Offset', async () => {
      const { id } = await create(version, false, { 'Upload-Length': '10' }, 'abcd');
      const res = await append(version, id, 2, 'cdef', false);
      expect(res.status).toBe(409);
      expect(res.headers.get('upload-offset')).toBe('4');
      if (version >= 6) {
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        const problem = (await res.json()) as Record<string, unknown>;
        expect(problem).toMatchObject({ type: 'https://iana.org/assignments/http-problem-types#mismatching-upload-offset', 'expected-offset': 4, 'provided-offset': 2 });
      }
      expect((await head(version, id)).headers.get('upload-offset')).toBe('4');
    });

    it('cancels an upload with DELETE', async () => {
      const { id } = await create(version, false, { 'Upload-Length': '10' }, 'abc');
      const res = await request(`/files/${id}`, { method: 'DELETE', headers: interop(version) });
      expect(res.status).toBe(204);
      expect((await head(version, id)).status).toBe(404);
    });

    it('refuses an upload past MAX_UPLOAD_SIZE with 413 (and Upload-Limit where the version has it)', async () => {
      const { res } = await create(version, false, { 'Upload-Length': String(MAX + 1) });
      expect(res.status).toBe(413);
      if (version >= 6) expect(res.headers.get('upload-limit')).toContain(`max-size=${MAX}`);
      // Appends past it, with no declared length: refused before a byte is read.
      const { id } = await create(version, false, {}, 'x'.repeat(MAX - 1));
      const over = await append(version, id, MAX - 1, 'yy', false);
      expect(over.status).toBe(413);
      expect((await head(version, id)).headers.get('upload-offset')).toBe(String(MAX - 1));
    });

    it('lets only the protocol that created an upload append to it', async () => {
      const { id } = await create(version, false, { 'Upload-Length': '4' }, 'ab');
      const tusPatch = await request(`/files/${id}`, { method: 'PATCH', headers: { ...TUS, 'Content-Type': OFFSET_STREAM, 'Upload-Offset': '2', 'Content-Length': '2' }, body: 'cd' });
      expect(tusPatch.status).toBe(403);
      expect(await tusPatch.text()).toMatch(/^ERR_WRONG_PROTOCOL: /);
      // Reading works with either: tus HEAD on this upload.
      const tusHead = await request(`/files/${id}`, { method: 'HEAD', headers: TUS });
      expect(tusHead.headers.get('upload-offset')).toBe('2');

      const tusUpload = await createTusUpload(t.app, { 'Upload-Length': '4' });
      const ietfPatch = await append(version, tusUpload.id, 0, 'abcd', true);
      expect(ietfPatch.status).toBe(403);
      expect(await ietfPatch.text()).toMatch(/^ERR_WRONG_PROTOCOL: /);
      // Offset retrieval works on a tus upload too.
      expect((await head(version, tusUpload.id)).headers.get('upload-offset')).toBe('0');
    });

    it('answers bad input with 4xx, never 5xx', async () => {
      // Upload-Length and Content-Length disagree on a completing creation.
      const contradicting = await create(version, true, { 'Upload-Length': '5' }, 'abc');
      expect(contradicting.res.status).toBe(400);
      expect(contradicting.res.headers.get('location')).toBeNull();
      const malformed = await request('/files', { method: 'POST', headers: { ...interop(version), [version === 3 ? 'Upload-Incomplete' : 'Upload-Complete']: 'yes' } });
      expect(malformed.status).toBe(400);
      const missing = await request('/files', { method: 'POST', headers: interop(version) });
      expect(missing.status).toBe(400);

      const { id } = await create(version, false, { 'Upload-Length': '10' });
      expect((await append(version, id, -1, 'a', false)).status).toBe(400);
      expect((await append(version, id, 0, 'a', false, { 'Upload-Offset': '99999999999999999999' })).status).toBe(400);
      expect((await append(version, id, 0, 'a', false, { 'Upload-Offset': '1.5' })).status).toBe(400);
      expect((await append(version, id, 5, 'a', false)).status).toBe(409);
      // More than the declared length.
      expect((await append(version, id, 0, 'x'.repeat(11), false)).status).toBe(400);
      // A completing append that ends short of the declared length.
      expect((await append(version, id, 0, 'abc', true)).status).toBe(400);
      if (version >= 6) {
        const wrongType = await append(version, id, 0, 'a', false, { 'Content-Type': 'application/offset+octet-stream' });
        expect(wrongType.status).toBe(415);
      }
      const badLength = await create(version, false, { 'Upload-Length': '-3' });
      expect(badLength.res.status).toBe(400);
      expect((await head(version, id)).headers.get('upload-offset')).toBe('0');
    });
  });

  it('names the versions it speaks when asked for one it does not', async () => {
    for (const version of ['2', '9', 'abc', '05']) {
      const res = await request('/files', { method: 'POST', headers: { 'Upload-Draft-Interop-Version': version, 'Upload-Complete': '?0' } });
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/^ERR_UNSUPPORTED_INTEROP_VERSION: .*3, 4, 5, 6, 7, 8/);
    }
  });

  it('answers discovery (OPTIONS) with the limits where the version has them', async () => {
    const v5 = await request('/files', { method: 'OPTIONS', headers: interop(5) });
    expect(v5.headers.get('upload-limit')).toBeNull();
    const v6 = await request('/files', { method: 'OPTIONS', headers: interop(6) });
    expect(v6.headers.get('upload-limit')).toBe(`max-size=${MAX}, expires=3600`);
    const v8 = await request('/files', { method: 'OPTIONS', headers: interop(8) });
    expect(v8.headers.get('upload-limit')).toBe(`max-size=${MAX}, max-age=3600`);
    expect(v8.headers.get('accept-patch')).toBe('application/partial-upload');
    // Without the header: tus discovery, as before.
    const tus = await request('/files', { method: 'OPTIONS', headers: {} });
    expect(tus.headers.get('tus-version')).toBe('1.0.0');
  });
});
