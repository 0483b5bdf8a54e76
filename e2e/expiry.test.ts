import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteSource, MiB, sha256 } from './support/files.js';
import { pollUntil, Scope, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { download, fetchWithin, head, OCTET, patch, startClientUpload, TUS } from './support/tus.js';
import { uploadIdOf } from './support/status.js';

const EXPIRY_S = 4;

/** Unfinished uploads expire (UPLOAD_EXPIRY=4s, swept every 500 ms); finished ones never do. On every storage kind. */
describe.each(STORE_KINDS)('[%s] upload expiry', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ UPLOAD_EXPIRY: `${EXPIRY_S}s`, EXPIRY_SWEEP_INTERVAL: '500ms' }));
  });
  afterAll(() => scope.dispose());

  it('removes an unfinished upload (410 Gone afterwards) and keeps a finished one', async () => {
    const content = new ByteSource('expiry-finished').bytes(0, MiB);
    // Both created now: one is finished at once, one is left at half.
    const finishedRun = startClientUpload(content, { endpoint: server.endpoint, chunkSize: MiB });
    const create = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(MiB), 'Content-Type': OCTET }, body: content.subarray(0, MiB / 2) });
    await create.arrayBuffer();
    expect(create.status).toBe(201);
    // "If expiration is known at creation, the Upload-Expires header MUST be included."
    const expires = create.headers.get('upload-expires');
    expect(expires).not.toBeNull();
    expect(Number.isNaN(Date.parse(expires ?? ''))).toBe(false);
    const unfinished = new URL(create.headers.get('location') ?? '', server.endpoint).toString();
    const unfinishedId = uploadIdOf(unfinished);
    // Before the sweep (well within UPLOAD_EXPIRY): on S3 the half upload is an open multipart
    // upload, its .info, and its 512 KiB (less than a part) in <id>.part.
    expect(await store.objectsOf(unfinishedId)).toEqual(kind === 's3' ? [`${unfinishedId}.info`, `${unfinishedId}.part`, `multipart:${unfinishedId}`] : [unfinishedId, `${unfinishedId}.json`]);
    expect(await store.storedBytes(unfinishedId)).toBe(MiB / 2);
    const finished = await finishedRun.done;
    const finishedId = uploadIdOf(finished);
    expect(await store.objectsOf(finishedId)).toEqual(store.finishedObjects(finishedId));

    // The sweep removes the unfinished one once it is older than UPLOAD_EXPIRY.
    await server.waitForLog((line) => line.msg === 'expired unfinished upload removed' && line.uploadId === unfinishedId, 'the sweep to remove the unfinished upload', (EXPIRY_S + 15) * 1000);
    // Nothing of it is left: on S3 the multipart upload is aborted and <id>, <id>.info and <id>.part are gone.
    expect(await store.objectsOf(unfinishedId)).toEqual([]);
    expect((await head(unfinished)).status).toBe(410);
    expect((await patch(unfinished, MiB / 2, content.subarray(MiB / 2))).status).toBe(410);
    const gone = await fetchWithin(unfinished);
    await gone.arrayBuffer();
    expect(gone.status).toBe(410);

    // The finished upload is past UPLOAD_EXPIRY too, and still there.
    const state = await head(finished);
    expect(state.status).toBe(200);
    expect(state.offset).toBe(MiB);
    const got = await download(finished);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(sha256(content));
    expect(await store.objectsOf(finishedId)).toEqual(store.finishedObjects(finishedId));
    expect(server.logs().some((line) => line.msg === 'expired unfinished upload removed' && line.uploadId === finishedId)).toBe(false);
  });

  it('expires a partial upload of a concatenation even once all its bytes arrived (it is only a piece)', async () => {
    const content = new ByteSource('expiry-partial').bytes(0, 1000);
    const create = await fetchWithin(server.endpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': String(content.length), 'Upload-Concat': 'partial', 'Content-Type': OCTET },
      body: content,
    });
    await create.arrayBuffer();
    expect(create.status).toBe(201);
    expect(create.headers.get('upload-offset')).toBe(String(content.length));
    const url = new URL(create.headers.get('location') ?? '', server.endpoint).toString();
    const id = uploadIdOf(url);
    expect((await head(url)).headers.get('upload-concat')).toBe('partial');
    await server.waitForLog((line) => line.msg === 'expired unfinished upload removed' && line.uploadId === id, 'the sweep to remove the finished partial upload', (EXPIRY_S + 15) * 1000);
    expect(await store.objectsOf(id)).toEqual([]);
    expect((await head(url)).status).toBe(410);
    // A final upload naming it is refused with a clear 4xx.
    const final = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Concat': `final;${new URL(url).pathname}` } });
    expect(final.status).toBe(400);
    expect(await final.text()).toMatch(/^ERR_INVALID_CONCAT: partial upload \S+ expired/);
  });

  it('lets tus-js-client start over when the upload it resumes has expired', async () => {
    const content = new ByteSource('expiry-restart').bytes(0, 2 * MiB);
    const create = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(content.byteLength) } });
    await create.arrayBuffer();
    const expired = new URL(create.headers.get('location') ?? '', server.endpoint).toString();
    await pollUntil(async () => ((await head(expired)).status === 410 ? true : undefined), 'the upload to expire', (EXPIRY_S + 15) * 1000, 250);
    // HEAD says 410 as soon as the upload is past UPLOAD_EXPIRY; the sweep removes its objects soon after.
    await server.waitForLog((line) => line.msg === 'expired unfinished upload removed' && line.uploadId === uploadIdOf(expired), 'the sweep to remove the expired upload', 15_000);
    expect(await store.objectsOf(uploadIdOf(expired))).toEqual([]);

    const methods: string[] = [];
    const run = startClientUpload(content, {
      endpoint: server.endpoint,
      uploadUrl: expired,
      chunkSize: MiB,
      onBeforeRequest: (req) => {
        methods.push(req.getMethod());
      },
    });
    const url = await run.done;
    // HEAD said 410, so the client created a new upload and sent everything there.
    expect(methods.slice(0, 2)).toEqual(['HEAD', 'POST']);
    expect(url).not.toBe(expired);
    const got = await download(url);
    expect(got.sha256).toBe(sha256(content));
  });
});
