import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HookEvent } from '../hooks/types.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, headUpload, patchUpload, TUS, waitFor } from '../testing/http-test-helpers.js';
import { finalUploadId } from './concatenation.js';

/** The tus concatenation extension through the app, on file storage (e2e/concatenation.test.ts runs both stores). */
describe('concatenation (Upload-Concat)', () => {
  let t: TestApp;
  let events: HookEvent[];

  afterEach(async () => {
    await t.cleanup();
  });

  async function start(env: Record<string, string> = {}) {
    events = [];
    const record = (event: HookEvent) => {
      events.push(event);
    };
    t = await createTestApp(env, { hooks: { 'post-create': record, 'post-finish': record, 'pre-finish': record, 'pre-create': record } });
    await t.startBackground();
  }

  async function partial(content: string, { finish = true } = {}): Promise<string> {
    const { path: uploadPath } = await createUpload(t.app, { 'Upload-Length': String(Buffer.byteLength(content)), 'Upload-Concat': 'partial' });
    if (finish && content.length > 0) expect((await patchUpload(t.app, uploadPath, 0, content)).status).toBe(204);
    return uploadPath;
  }

  const final = (concat: string, headers: Record<string, string> = {}) =>
    t.app.request('http://localhost/files', { method: 'POST', headers: { Host: 'localhost', ...TUS, 'Upload-Concat': concat, ...headers } });

  it('builds the final upload from finished partials, in order; HEAD answers Upload-Concat for both kinds', async () => {
    await start();
    const a = await partial('hello, ');
    const b = await partial('concatenated ');
    const c = await partial('world');

    const headA = await headUpload(t.app, a);
    expect(headA.headers.get('upload-concat')).toBe('partial');
    expect(headA.headers.get('link')).toBeNull();

    // An absolute URL of this server and paths, mixed.
    const res = await final(`final;http://localhost${a} ${b} ${c}`, { 'Upload-Metadata': `filename ${Buffer.from('all.txt').toString('base64')}` });
    expect(res.status).toBe(201);
    const location = res.headers.get('location') ?? '';
    const id = location.split('/').pop() ?? '';
    expect(location).toBe(`http://localhost/files/${id}`);

    const head = await headUpload(t.app, `/files/${id}`);
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-length')).toBe(String('hello, concatenated world'.length));
    expect(head.headers.get('upload-offset')).toBe(head.headers.get('upload-length'));
    expect(head.headers.get('upload-concat')).toBe(`final;${a} ${b} ${c}`);

    const got = await t.app.request(`/files/${id}`);
    expect(await got.text()).toBe('hello, concatenated world');

    // pre-finish and post-finish ran for the final upload only; the partials are gone.
    await waitFor(() => events.some((e) => e.type === 'post-finish'));
    const finishes = events.filter((e) => e.type === 'post-finish' || e.type === 'pre-finish');
    expect(finishes.map((e) => [e.type, e.upload.id])).toEqual([
      ['pre-finish', id],
      ['post-finish', id],
    ]);
    for (const p of [a, b, c]) expect((await headUpload(t.app, p)).status).toBe(404);

    // Processing ran once, for the final upload.
    await waitFor(async () => (await (await t.app.request(`/uploads/${id}`)).json()).state === 'done', { timeoutMs: 10_000 });
  });

  it('answers a PATCH to a final upload with 403, and an identical final request with the same upload', async () => {
    await start({ CONCAT_KEEP_PARTIALS: 'true' });
    const a = await partial('aaa');
    const b = await partial('bbb');
    const first = await final(`final;${a} ${b}`);
    const again = await final(`final;${a} ${b}`);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
    const id = (first.headers.get('location') ?? '').split('/').pop() ?? '';
    expect(id).toBe(finalUploadId([a, b].map((p) => p.split('/').pop() ?? '')));

    const patched = await patchUpload(t.app, `/files/${id}`, 6, 'x');
    expect(patched.status).toBe(403);
    expect(await patched.text()).toMatch(/^ERR_MODIFY_FINAL: /);
    // Kept (CONCAT_KEEP_PARTIALS=true): still there, still partial.
    expect((await headUpload(t.app, a)).headers.get('upload-concat')).toBe('partial');
  });

  it('builds two racing identical final requests once', async () => {
    await start();
    const a = await partial('x'.repeat(50_000));
    const b = await partial('y'.repeat(50_000));
    const [one, two] = await Promise.all([final(`final;${a} ${b}`), final(`final;${a} ${b}`)]);
    expect([one.status, two.status]).toEqual([201, 201]);
    expect(one.headers.get('location')).toBe(two.headers.get('location'));
    await waitFor(() => events.some((e) => e.type === 'post-finish'));
    expect(events.filter((e) => e.type === 'post-create' && e.upload.size === 100_000)).toHaveLength(1);
  });

  it('refuses bad Upload-Concat input with a clear 4xx, never a 5xx', async () => {
    await start({ MAX_UPLOAD_SIZE: '10' });
    const done = await partial('12345');
    const done2 = await partial('67890');
    const more = await partial('x');
    const unfinished = await partial('abc', { finish: false });
    const single = (await createUpload(t.app, { 'Upload-Length': '0' })).path;
    const finalOk = await final(`final;${done} ${done2}`);
    expect(finalOk.status).toBe(201);
    const finalPath = new URL(finalOk.headers.get('location') ?? '').pathname;
    const keep = await partial('keep');

    const cases: [string, Record<string, string>, number, RegExp][] = [
      ['bogus', {}, 400, /^ERR_INVALID_CONCAT: Upload-Concat must be/],
      ['final;', {}, 400, /names no partial uploads/],
      ['final; ', {}, 400, /names no partial uploads/],
      [`final;${keep.slice(1)}`, {}, 400, /relative URL/],
      [`final;http://elsewhere.example${keep}`, {}, 400, /another server/],
      [`final;/other${keep}`, {}, 400, /not an upload URL of this server/],
      [`final;/files/../files/abc`, {}, 400, /not an upload URL/],
      [`final;${keep} ${keep}`, {}, 400, /named twice/],
      [`final;/files/doesnotexist0000`, {}, 400, /does not exist/],
      [`final;${unfinished}`, {}, 400, /not finished/],
      [`final;${single}`, {}, 400, /not a partial upload/],
      [`final;${finalPath}`, {}, 400, /is a final upload/],
      [`final;${keep}`, { 'Upload-Length': '4' }, 400, /send no Upload-Length/],
      [`final;${keep}`, { 'Content-Type': 'application/offset+octet-stream' }, 400, /no body/],
      [`final;${more} ${keep}`, { 'Upload-Metadata': 'bad metadata value!' }, 400, /^ERR_INVALID_UPLOAD_METADATA/],
    ];
    for (const [concat, headers, status, body] of cases) {
      const res = await final(concat, headers);
      expect({ concat, status: res.status }).toEqual({ concat, status });
      expect(await res.text()).toMatch(body);
      expect(res.headers.get('tus-resumable')).toBe('1.0.0');
    }
    // Over MAX_UPLOAD_SIZE (10 bytes) together, though each partial is small.
    const big = await partial('123456');
    const tooBig = await final(`final;${big} ${keep} ${more}`);
    expect(tooBig.status).toBe(413);
    // A refused final leaves its partials usable.
    expect((await headUpload(t.app, keep)).status).toBe(200);
  });

  it('refuses a partial whose declared digest did not match, and checks the final against its own', async () => {
    await start();
    const digestOf = (text: string) => `sha-256=:${createHash('sha256').update(text).digest('base64')}:`;
    const good = await partial('good');
    const { path: bad } = await createUpload(t.app, { 'Upload-Length': '3', 'Upload-Concat': 'partial', 'Repr-Digest': digestOf('not this') });
    expect((await patchUpload(t.app, bad, 0, 'bad')).status).toBe(460);
    const refused = await final(`final;${good} ${bad}`);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/^ERR_INVALID_CONCAT: partial upload \S+ failed: the upload's sha-256 is/);

    const other = await partial('other');
    const wrong = await final(`final;${good} ${other}`, { 'Repr-Digest': digestOf('goodbye') });
    expect(wrong.status).toBe(460);
    // The same list names the same final upload: refused by its digest, it kept its partials and is built again.
    const right = await final(`final;${good} ${other}`, { 'Repr-Digest': digestOf('goodother') });
    expect(right.status).toBe(201);
    const id = (right.headers.get('location') ?? '').split('/').pop() ?? '';
    expect(await (await t.app.request(`/files/${id}`)).text()).toBe('goodother');
    await waitFor(async () => (await (await t.app.request(`/uploads/${id}`)).json()).state === 'done', { timeoutMs: 10_000 });
  });

  it('leaves nothing but the final upload on disk once the partials are consumed', async () => {
    await start();
    const a = await partial('left');
    const b = await partial('right');
    const res = await final(`final;${a} ${b}`);
    expect(res.status).toBe(201);
    const id = (res.headers.get('location') ?? '').split('/').pop() ?? '';
    const files = (await fs.readdir(t.storageDir)).filter((name) => !name.startsWith('.'));
    expect(files.sort()).toEqual([id, `${id}.json`].sort());
    expect(await fs.readFile(path.join(t.storageDir, id), 'utf8')).toBe('leftright');
  });
});
