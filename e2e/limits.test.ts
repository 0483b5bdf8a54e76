import { Readable } from 'node:stream';
import { DetailedError } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteSource, KiB, MiB } from './support/files.js';
import { Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { createUpload, fetchWithin, head, OCTET, patch, rawPatch, startClientUpload, TUS } from './support/tus.js';
import { uploadIdOf } from './support/status.js';

const TWO_GIB = 2147483648;

/** The 2 GiB promise (default MAX_UPLOAD_SIZE), checked without ever sending 2 GiB, on every storage kind. */
describe.each(STORE_KINDS)('[%s] upload size limit, default 2 GiB', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    // MAX_UPLOAD_SIZE is not set: the default applies.
    server = await scope.server(store.startOptions());
  });
  afterAll(() => scope.dispose());

  it('advertises Tus-Max-Size: 2147483648 on OPTIONS', async () => {
    const response = await fetchWithin(server.endpoint, { method: 'OPTIONS' });
    await response.arrayBuffer();
    expect(response.status).toBe(204);
    expect(response.headers.get('tus-max-size')).toBe(String(TWO_GIB));
    expect(response.headers.get('tus-version')).toBe('1.0.0');
    expect(response.headers.get('tus-extension')?.split(',')).toEqual(expect.arrayContaining(['creation', 'creation-defer-length', 'termination']));
  });

  it('refuses Upload-Length 2147483649 with 413 naming both sizes in human units', async () => {
    const response = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(TWO_GIB + 1) } });
    const body = await response.text();
    expect(response.status).toBe(413);
    expect(response.headers.get('tus-resumable')).toBe('1.0.0');
    expect(body).toMatch(/^ERR_MAX_SIZE_EXCEEDED: /);
    expect(body).toContain('GiB');
    expect(body).toContain(String(TWO_GIB + 1));
    expect(body).toContain(String(TWO_GIB));
    expect(response.headers.get('location')).toBeNull();
  });

  it('gives tus-js-client a 413 it reports (not retried) for a file over 2 GiB', async () => {
    const requests: string[] = [];
    const run = startClientUpload(Readable.from([Buffer.alloc(16)]), {
      endpoint: server.endpoint,
      uploadSize: TWO_GIB + 1,
      chunkSize: MiB,
      retryDelays: [100, 100, 100],
      onBeforeRequest: (req) => {
        requests.push(req.getMethod());
      },
    });
    const error = await run.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DetailedError);
    const response = (error as DetailedError).originalResponse;
    expect(response?.getStatus()).toBe(413);
    expect(response?.getBody()).toContain('GiB');
    expect(requests).toEqual(['POST']);
  });

  it('accepts exactly 2147483648 bytes (201), without writing them', async () => {
    const response = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(TWO_GIB) } });
    await response.arrayBuffer();
    expect(response.status).toBe(201);
    const url = new URL(response.headers.get('location') ?? '', server.endpoint).toString();
    const state = await head(url);
    expect(state.offset).toBe(0);
    expect(state.length).toBe(TWO_GIB);
    expect(await store.storedBytes(uploadIdOf(url))).toBe(0);
    const removed = await fetchWithin(url, { method: 'DELETE', headers: TUS });
    await removed.arrayBuffer();
    expect(removed.status).toBe(204);
    expect(await store.objectsOf(uploadIdOf(url))).toEqual([]);
  });

  it('refuses creation-with-upload over the limit with 413 and creates nothing', async () => {
    const before = await store.list();
    const response = await fetchWithin(server.endpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': String(TWO_GIB + 1), 'Content-Type': OCTET },
      body: new ByteSource('cwu').bytes(0, 64 * KiB),
    });
    const body = await response.text();
    expect(response.status).toBe(413);
    expect(body).toContain('GiB');
    expect(await store.list()).toEqual(before);
  });

  it('refuses a PATCH that declares a deferred Upload-Length over the limit with 413', async () => {
    const url = await createUpload(server.endpoint, { defer: true });
    const response = await patch(url, 0, new Uint8Array(0), { 'Upload-Length': String(TWO_GIB + 1) });
    expect(response.status).toBe(413);
    expect(response.text).toContain('GiB');
    expect(response.text).toContain(String(TWO_GIB + 1));
    // Nothing changed: the length is still deferred.
    const state = await head(url);
    expect(state.offset).toBe(0);
    expect(state.length).toBeUndefined();
    expect(state.headers.get('upload-defer-length')).toBe('1');
  });

  it('refuses a PATCH whose Content-Length would carry a deferred upload past 2 GiB, before the body is sent', async () => {
    const url = await createUpload(server.endpoint, { defer: true });
    // Only the headers go out: the answer must not wait for a 2 GiB body.
    const request = rawPatch(url, 0, { 'Content-Length': TWO_GIB + 1 });
    const response = await withTimeout(request.response, 15_000, 'the 413');
    request.destroy();
    expect(response.status).toBe(413);
    expect(response.body).toContain('GiB');
    expect((await head(url)).offset).toBe(0);
  });
});

/** Bodies that grow past the limit while streaming, on a server with a 1 MiB limit, on every storage kind. */
describe.each(STORE_KINDS)('[%s] upload size limit while streaming (MAX_UPLOAD_SIZE=1MiB)', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  const limit = MiB;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ MAX_UPLOAD_SIZE: '1MiB' }));
  });
  afterAll(() => scope.dispose());

  it('advertises the configured limit', async () => {
    const response = await fetchWithin(server.endpoint, { method: 'OPTIONS' });
    await response.arrayBuffer();
    expect(response.headers.get('tus-max-size')).toBe(String(limit));
  });

  it('stops a chunked PATCH on a deferred upload at the limit: 413, and no byte beyond it is stored', async () => {
    const url = await createUpload(server.endpoint, { defer: true });
    const data = new ByteSource('overflow').bytes(0, 2 * MiB);
    // No Content-Length: node:http sends Transfer-Encoding: chunked.
    const request = rawPatch(url, 0, { 'Transfer-Encoding': 'chunked' });
    const written = await request.writePaced(data, 64 * KiB, 0);
    request.end();
    const response = await withTimeout(request.response, 15_000, 'the 413');
    request.destroy();

    expect(response.status).toBe(413);
    expect(response.body).toMatch(/^ERR_MAX_SIZE_EXCEEDED: /);
    expect(response.body).toContain('1 MiB');
    expect(written).toBeGreaterThan(0);

    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.offset).toBeLessThanOrEqual(limit);
    const stored = await store.storedBytes(uploadIdOf(url));
    expect(stored).toBeLessThanOrEqual(limit);
    expect(stored).toBe(state.offset);
    // What was kept is the start of what was sent.
    const kept = await store.readStored(uploadIdOf(url));
    expect(kept.byteLength).toBe(stored);
    expect(kept.equals(data.subarray(0, kept.byteLength))).toBe(true);
  });

  it('refuses at once a PATCH whose Content-Length would pass the limit on a deferred upload', async () => {
    const url = await createUpload(server.endpoint, { defer: true });
    const request = rawPatch(url, 0, { 'Content-Length': 2 * MiB });
    const response = await withTimeout(request.response, 15_000, 'the 413');
    request.destroy();
    expect(response.status).toBe(413);
    expect(response.body).toContain('MiB');
    expect(request.bytesWritten).toBe(0);
    expect((await head(url)).offset).toBe(0);
  });

  it("stops a chunked PATCH that runs past the upload's own Upload-Length: 413, nothing stored beyond it", async () => {
    const length = 256 * KiB;
    const url = await createUpload(server.endpoint, { length });
    const data = new ByteSource('past-length').bytes(0, 768 * KiB);
    const request = rawPatch(url, 0, { 'Transfer-Encoding': 'chunked' });
    await request.writePaced(data, 64 * KiB, 0);
    request.end();
    const response = await withTimeout(request.response, 15_000, 'the 413');
    request.destroy();
    expect(response.status).toBe(413);

    const state = await head(url);
    expect(state.offset).toBeLessThanOrEqual(length);
    expect(await store.storedBytes(uploadIdOf(url))).toBeLessThanOrEqual(length);
  });

  it("refuses a PATCH whose Content-Length runs past the upload's Upload-Length (413) and stores nothing", async () => {
    const url = await createUpload(server.endpoint, { length: 10 });
    const response = await patch(url, 0, new ByteSource('eleven').bytes(0, 11));
    expect(response.status).toBe(413);
    expect((await head(url)).offset).toBe(0);
    expect(await store.storedBytes(uploadIdOf(url))).toBe(0);
  });

  it('accepts a deferred upload that ends exactly at the limit', async () => {
    const url = await createUpload(server.endpoint, { defer: true });
    const data = new ByteSource('exact').bytes(0, limit);
    const first = await patch(url, 0, data.subarray(0, limit / 2));
    expect(first.status).toBe(204);
    const last = await patch(url, limit / 2, data.subarray(limit / 2), { 'Upload-Length': String(limit) });
    expect(last.status).toBe(204);
    expect(last.offset).toBe(limit);
    const got = await fetchWithin(url);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
    expect(await store.objectsOf(uploadIdOf(url))).toEqual(store.finishedObjects(uploadIdOf(url)));
  });

  it('refuses a creation over the limit with 413 in MiB', async () => {
    const response = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(limit + 1) } });
    const body = await response.text();
    expect(response.status).toBe(413);
    expect(body).toContain('1 MiB');
    expect(body).toContain(String(limit + 1));
  });
});
