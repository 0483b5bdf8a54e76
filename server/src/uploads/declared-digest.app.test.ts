import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import type { Env } from '../config.js';
import type { HookEvent } from '../hooks/types.js';
import { sha256 } from '../processing/processors/sha256.js';
import type { Processor } from '../processing/processors/types.js';
import { createStorage, type UploadStorage } from '../storage/index.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { encodeMetadata, headUpload, idFromLocation, OFFSET_STREAM, patchUpload, TUS, waitFor } from '../testing/http-test-helpers.js';

/**
 * A digest of the whole upload declared at creation (Repr-Digest or metadata sha256), through
 * the app on both stores: checked when the last byte arrives, from the digest streamed in or
 * by reading the stored bytes; a mismatch answers 460 and ends the upload as failed, with no
 * pre-finish, post-finish or processing.
 */

const s3 = inject('s3');

const STORES: readonly (readonly [string, () => Env])[] = [
  ['file', () => ({})],
  ['s3', () => s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', S3_PREFIX: `digest-${randomBytes(4).toString('hex')}/` })],
];

const sha = (data: Buffer) => createHash('sha256').update(data).digest();
const reprDigest = (data: Buffer) => `sha-256=:${sha(data).toString('base64')}:`;

describe.each(STORES)('[%s] declared digest of the whole upload', (_kind, storeEnv) => {
  let env: Env;
  let t: TestApp;
  /** Per upload id, the hooks that ran and the processors that saw it. */
  const seen = new Map<string, string[]>();
  const note = (id: string, what: string) => seen.set(id, [...(seen.get(id) ?? []), what]);
  const recorded = (kind: HookEvent['type']) => (event: HookEvent) => void note(event.upload.id, kind);
  const watching = (processor: Processor): Processor => ({ name: processor.name, run: (input) => (note(input.id, `processor:${processor.name}`), processor.run(input)) });
  const deps = {
    hooks: { 'pre-create': () => undefined, 'pre-finish': recorded('pre-finish'), 'post-finish': recorded('post-finish') },
    processors: [watching(sha256)],
  };
  let preCreates = 0;
  /** The same storage, looked at from outside the app. */
  let storage: UploadStorage;

  beforeAll(async () => {
    env = storeEnv();
    t = await createTestApp(env, { ...deps, hooks: { ...deps.hooks, 'pre-create': () => void (preCreates += 1) } });
    storage = await createStorage(t.config);
    await t.startBackground();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  async function create(app: TestApp, length: number, headers: Record<string, string> = {}, body?: Buffer): Promise<{ res: Response; id: string; path: string }> {
    const res = await app.app.request('http://localhost/files', {
      method: 'POST',
      headers: { Host: 'localhost', ...TUS, 'Upload-Length': String(length), ...(body ? { 'Content-Type': OFFSET_STREAM, 'Content-Length': String(body.length) } : {}), ...headers },
      ...(body ? { body: new Uint8Array(body) } : {}),
    });
    const id = res.status === 201 ? idFromLocation(res.headers.get('location')) : '';
    return { res, id, path: `/files/${id}` };
  }

  async function status(app: TestApp, id: string): Promise<{ state: string; error: string | null; offset: number; processors: Record<string, { result?: { sha256?: string } }> }> {
    const res = await app.app.request(`/uploads/${id}`);
    expect(res.status).toBe(200);
    return (await res.json()) as never;
  }

  async function settled(app: TestApp, id: string) {
    let last: Awaited<ReturnType<typeof status>> | undefined;
    await waitFor(async () => ['done', 'failed', 'rejected'].includes((last = await status(app, id)).state), { timeoutMs: 15_000 });
    return last!;
  }

  /** A control upload, finished after `ids`: once its post-finish and processing ran, theirs would have too. */
  async function drained(app: TestApp): Promise<void> {
    const data = randomBytes(100);
    const control = await create(app, data.length);
    expect((await patchUpload(app.app, control.path, 0, data)).status).toBe(204);
    expect((await settled(app, control.id)).state).toBe('done');
    await waitFor(() => (seen.get(control.id) ?? []).includes('post-finish'), { timeoutMs: 10_000 });
  }

  it('the right sha-256 in Repr-Digest: 204, processing and post-finish run as always', async () => {
    const data = randomBytes(200_000);
    const { id, path } = await create(t, data.length, { 'Repr-Digest': reprDigest(data) });
    const res = await patchUpload(t.app, path, 0, data);
    expect(res.status).toBe(204);
    const done = await settled(t, id);
    expect(done.state).toBe('done');
    expect(done.processors.sha256?.result?.sha256).toBe(sha(data).toString('hex'));
    await waitFor(() => (seen.get(id) ?? []).includes('post-finish'), { timeoutMs: 10_000 });
    expect(seen.get(id)).toEqual(expect.arrayContaining(['pre-finish', 'post-finish', 'processor:sha256']));
  });

  it('a wrong one: the last PATCH gets 460 naming both digests, the upload is failed, and nothing runs after it', async () => {
    const data = randomBytes(150_000);
    const declared = sha(Buffer.from('something else')).toString('base64');
    const { id, path } = await create(t, data.length, { 'Repr-Digest': `sha-512=:${createHash('sha512').update(data).digest('base64')}:, sha-256=:${declared}:` });
    expect((await patchUpload(t.app, path, 0, data.subarray(0, 50_000))).status).toBe(204);
    const res = await patchUpload(t.app, path, 50_000, data.subarray(50_000));
    expect(res.status).toBe(460);
    expect(await res.text()).toBe(`ERR_DIGEST_MISMATCH: the upload's sha-256 is :${sha(data).toString('base64')}: but the client declared :${declared}:\n`);

    const failed = await status(t, id);
    expect(failed).toMatchObject({ state: 'failed', error: `the upload's sha-256 is :${sha(data).toString('base64')}: but the client declared :${declared}:`, offset: data.length });
    // The bytes are stored: HEAD says so (and its "make sure processing is queued" finds the upload settled).
    const head = await headUpload(t.app, path);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe(String(data.length));
    // Still downloadable, like a rejected upload: the client may look at what arrived.
    const download = await t.app.request(path, { headers: TUS });
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(data)).toBe(true);

    await drained(t);
    expect(seen.get(id)).toBeUndefined();
    expect((await status(t, id)).state).toBe('failed');
  });

  it('metadata sha256 as hex or base64 is checked the same way', async () => {
    const data = randomBytes(30_000);
    for (const value of [sha(data).toString('hex'), sha(data).toString('base64')]) {
      const { id, path } = await create(t, data.length, { 'Upload-Metadata': encodeMetadata({ filename: 'a.bin', sha256: value }) });
      expect((await patchUpload(t.app, path, 0, data)).status).toBe(204);
      expect((await settled(t, id)).state).toBe('done');
      // The client's metadata stays as it sent it.
      expect((await headUpload(t.app, path)).headers.get('upload-metadata')).toBe(encodeMetadata({ filename: 'a.bin', sha256: value }));
    }
    const wrong = await create(t, data.length, { 'Upload-Metadata': encodeMetadata({ sha256: sha(Buffer.from('x')).toString('hex') }) });
    const res = await patchUpload(t.app, wrong.path, 0, data);
    expect(res.status).toBe(460);
    expect(await res.text()).toMatch(/^ERR_DIGEST_MISMATCH: /);
    expect((await status(t, wrong.id)).state).toBe('failed');
  });

  it('creation-with-upload that finishes the upload: the POST itself is checked', async () => {
    const data = randomBytes(10_000);
    const right = await create(t, data.length, { 'Repr-Digest': reprDigest(data) }, data);
    expect(right.res.status).toBe(201);
    expect((await settled(t, right.id)).state).toBe('done');
    const wrong = await create(t, data.length, { 'Repr-Digest': reprDigest(Buffer.from('x')) }, data);
    expect(wrong.res.status).toBe(460);
    expect(await wrong.res.text()).toMatch(/^ERR_DIGEST_MISMATCH: the upload's sha-256 is :/);
  });

  it('an empty upload is checked against the sha-256 of nothing', async () => {
    const right = await create(t, 0, { 'Repr-Digest': reprDigest(Buffer.alloc(0)) });
    expect(right.res.status).toBe(201);
    expect((await settled(t, right.id)).state).toBe('done');
    const wrong = await create(t, 0, { 'Repr-Digest': reprDigest(Buffer.from('x')) });
    expect(wrong.res.status).toBe(460);
  });

  it.each([
    ['a malformed Repr-Digest', { 'Repr-Digest': 'sha-256=:not closed' }, /^ERR_INVALID_DIGEST: Repr-Digest is not a structured-field dictionary/],
    ['a sha-256 of the wrong length', { 'Repr-Digest': 'sha-256=:AAAA:' }, /^ERR_INVALID_DIGEST: the sha-256 value of Repr-Digest must be the base64 of 32 bytes/],
    ['a malformed metadata sha256', { 'Upload-Metadata': encodeMetadata({ sha256: 'abc' }) }, /^ERR_INVALID_DIGEST: the metadata value sha256 must be/],
    ['a metadata sha256 without value', { 'Upload-Metadata': 'sha256' }, /^ERR_INVALID_DIGEST: the metadata value sha256 must be/],
    [
      'a header and metadata that disagree',
      { 'Repr-Digest': reprDigest(Buffer.from('a')), 'Upload-Metadata': encodeMetadata({ sha256: sha(Buffer.from('b')).toString('hex') }) },
      /^ERR_INVALID_DIGEST: Repr-Digest declares sha-256 :.+: but the metadata sha256 declares :.+:\n$/,
    ],
  ])('%s: 400 before the pre-create hook, and no upload is created', async (_why, headers, body) => {
    const before = (await storage.listUploadIds()).length;
    const hooksBefore = preCreates;
    const { res } = await create(t, 10, headers as Record<string, string>);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(body);
    expect(res.headers.get('location')).toBeNull();
    expect((await storage.listUploadIds()).length).toBe(before);
    expect(preCreates).toBe(hooksBefore);
  });

  it('a browser may send Repr-Digest: the preflight allows it', async () => {
    const res = await t.app.request('http://localhost/files', {
      method: 'OPTIONS',
      headers: { Origin: 'https://page.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'repr-digest, upload-length, tus-resumable' },
    });
    expect(res.status).toBeLessThan(300);
    expect((res.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/)).toContain('repr-digest');
  });

  it('an upload resumed on a restarted server (no streamed digest) is checked by reading the stored bytes', async () => {
    const data = randomBytes(120_000);
    const wrongData = Buffer.from(data);
    wrongData.writeUInt8(wrongData.readUInt8(70_000) ^ 0xff, 70_000);
    // The first instance takes the first bytes and stops; a second one over the same storage
    // takes the rest: it never saw the first bytes stream in.
    const first = await createTestApp(env, deps);
    let restarted: TestApp | undefined;
    try {
      const right = await create(first, data.length, { 'Repr-Digest': reprDigest(data) });
      const wrong = await create(first, data.length, { 'Upload-Metadata': encodeMetadata({ sha256: sha(wrongData).toString('hex') }) });
      for (const { path } of [right, wrong]) expect((await patchUpload(first.app, path, 0, data.subarray(0, 40_000))).status).toBe(204);
      await first.stopBackground();

      restarted = await createTestApp({ ...env, STORAGE_DIR: first.storageDir }, deps);
      await restarted.startBackground();
      const finished = await patchUpload(restarted.app, right.path, 40_000, data.subarray(40_000));
      expect(finished.status).toBe(204);
      expect((await settled(restarted, right.id)).state).toBe('done');
      expect((await status(restarted, right.id)).processors.sha256?.result?.sha256).toBe(sha(data).toString('hex'));

      const mismatched = await patchUpload(restarted.app, wrong.path, 40_000, data.subarray(40_000));
      expect(mismatched.status).toBe(460);
      expect(await mismatched.text()).toBe(`ERR_DIGEST_MISMATCH: the upload's sha-256 is :${sha(data).toString('base64')}: but the client declared :${sha(wrongData).toString('base64')}:\n`);
      expect((await status(restarted, wrong.id)).state).toBe('failed');
    } finally {
      await restarted?.cleanup();
      await first.cleanup();
    }
  });
});
