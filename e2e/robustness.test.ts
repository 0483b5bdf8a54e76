import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KiB, makeFile, MiB, type TestFile } from './support/files.js';
import { Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { createUpload, download, head, OCTET, patch, rawPatch, RawRequest, startClientUpload, TUS, waitForStoredBytes } from './support/tus.js';
import { uploadIdOf } from './support/status.js';

const IDLE_TIMEOUT_S = 2;

/**
 * Clients that stall or vanish in the middle of a PATCH (IDLE_TIMEOUT=2s, and one server with
 * the default), on every storage kind: the bytes that arrived are kept (on S3, the part
 * buffered under STORAGE_DIR is sent when the body is cut).
 */
describe.each(STORE_KINDS)('[%s] stalled and vanished clients', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  /** Default IDLE_TIMEOUT (60 s): only the lock release can end a stalled PATCH in time. */
  let patient: ServerProcess;
  let patientStore: TestStore;
  let file: TestFile;
  let data: Buffer<ArrayBuffer>;

  beforeAll(async () => {
    [store, patientStore] = await Promise.all([createTestStore(kind, scope), createTestStore(kind, scope)]);
    [server, patient] = await Promise.all([scope.server(store.startOptions({ IDLE_TIMEOUT: `${IDLE_TIMEOUT_S}s` })), scope.server(patientStore.startOptions())]);
    const dir = await scope.tempDir();
    file = await makeFile(dir, 'source-2mib.bin', 2 * MiB, 'robust-2');
    data = await fsp.readFile(file.path);
  });
  afterAll(() => scope.dispose());

  const patchesAnswered = (url: string) => server.logs().filter((line) => line.method === 'PATCH' && line.uploadId === uploadIdOf(url)).length;

  it('ends a PATCH whose client stops sending, keeps the bytes sent, and releases the upload', async () => {
    const url = await createUpload(server.endpoint, { length: file.size });
    const sent = 256 * KiB;
    const request = rawPatch(url, 0, { 'Content-Length': file.size });
    expect(await request.write(data.subarray(0, sent))).toBe(true);
    // ...and then nothing more: the server must end the request on its own.
    const response = await withTimeout(request.response, (IDLE_TIMEOUT_S + 15) * 1000, 'the server to end the stalled PATCH');
    request.destroy();

    expect(response.status).toBe(204);
    expect(response.headers.connection).toBe('close');
    const answered = Number(response.headers['upload-offset']);
    // Every byte written had reached the server long before the idle timeout.
    expect(answered).toBe(sent);
    expect((await head(url)).offset).toBe(sent);
    expect(await store.storedBytes(uploadIdOf(url))).toBe(sent);

    // The lock is free: the next PATCH from that offset goes through at once.
    const rest = await patch(url, sent, data.subarray(sent));
    expect(rest.status).toBe(204);
    expect(rest.offset).toBe(file.size);
    const got = await download(url);
    expect(got.sha256).toBe(file.sha256);
  });

  it('answers a stalled creation-with-upload POST with 201, its Location and the bytes kept', async () => {
    const sent = 100 * KiB;
    const request = new RawRequest(server.endpoint, 'POST', { ...TUS, 'Upload-Length': file.size, 'Content-Type': OCTET, 'Content-Length': file.size });
    expect(await request.write(data.subarray(0, sent))).toBe(true);
    const response = await withTimeout(request.response, (IDLE_TIMEOUT_S + 15) * 1000, 'the server to end the stalled POST');
    request.destroy();

    expect(response.status).toBe(201);
    expect(Number(response.headers['upload-offset'])).toBe(sent);
    const location = response.headers.location;
    expect(location).toBeDefined();
    const url = new URL(location ?? '', server.endpoint).toString();
    expect((await head(url)).offset).toBe(sent);
    expect(await store.storedBytes(uploadIdOf(url))).toBe(sent);
    const rest = await patch(url, sent, data.subarray(sent));
    expect(rest.status).toBe(204);
    expect((await download(url)).sha256).toBe(file.sha256);
  });

  it('does not cut a slow client that keeps sending within the idle timeout', async () => {
    const size = 512 * KiB;
    const url = await createUpload(server.endpoint, { length: size });
    const request = rawPatch(url, 0, { 'Content-Length': size });
    // 8 pieces, one every 400 ms: ~3 s in all, longer than IDLE_TIMEOUT, never idle for it.
    const written = await request.writePaced(data.subarray(0, size), 64 * KiB, 400);
    request.end();
    const response = await withTimeout(request.response, 15_000, 'the slow PATCH to be answered');
    expect(written).toBe(size);
    expect(response.status).toBe(204);
    expect(Number(response.headers['upload-offset'])).toBe(size);
  });

  it('keeps what arrived of a PATCH whose client disconnects mid-body, and the upload resumes', async () => {
    const url = await createUpload(server.endpoint, { length: file.size, metadata: { filename: 'cut.bin' } });
    const sent = 768 * KiB;
    const answeredBefore = patchesAnswered(url);
    const request = rawPatch(url, 0, { 'Content-Length': file.size });
    expect(await request.write(data.subarray(0, sent))).toBe(true);
    // The bytes are reaching the disk; then the client's connection drops.
    await waitForStoredBytes(() => store.bytesArrived(uploadIdOf(url)), 1);
    request.destroy();
    await expect(withTimeout(request.response, 5_000, 'the aborted request to fail')).rejects.toThrow();

    // Once the server has finished with the cut request, HEAD shows what it kept.
    await server.waitForLog(() => patchesAnswered(url) > answeredBefore, 'the cut PATCH to be logged');
    const state = await head(url);
    expect(state.status).toBe(200);
    const offset = state.offset ?? 0;
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(sent);
    expect(await store.storedBytes(uploadIdOf(url))).toBe(offset);

    // tus-js-client picks it up from there.
    const chunks: { size: number; accepted: number }[] = [];
    const resumed = startClientUpload(fs.createReadStream(file.path), {
      uploadUrl: url,
      chunkSize: MiB,
      onChunkComplete: (size, accepted) => chunks.push({ size, accepted }),
    });
    expect(await resumed.done).toBe(url);
    expect((chunks[0]?.accepted ?? 0) - (chunks[0]?.size ?? 0)).toBe(offset);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(file.sha256);
  });

  it('answers a HEAD on an upload whose PATCH is stalled (default 60 s idle timeout) by ending that PATCH', async () => {
    // A client whose connection died silently (no FIN, no RST) comes back and asks where to
    // resume. HEAD waits for the upload's lock; the stalled PATCH holding it is asked to let go
    // (@tus/server gives it 3 s), ends keeping its bytes, and HEAD gets its answer, long
    // before the 60 s idle timeout.
    const url = await createUpload(patient.endpoint, { length: file.size });
    const request = rawPatch(url, 0, { 'Content-Length': file.size });
    expect(await request.write(data.subarray(0, 128 * KiB))).toBe(true);
    await waitForStoredBytes(() => patientStore.bytesArrived(uploadIdOf(url)), 128 * KiB);
    const state = await head(url, 20_000);
    expect(state.status).toBe(200);
    expect(state.offset).toBe(128 * KiB);
    const response = await withTimeout(request.response, 15_000, 'the stalled PATCH to be ended');
    request.destroy();
    expect(response.status).toBe(204);
    expect(Number(response.headers['upload-offset'])).toBe(128 * KiB);

    // And the client resumes from there.
    const rest = await patch(url, 128 * KiB, data.subarray(128 * KiB));
    expect(rest.status).toBe(204);
    expect((await download(url)).sha256).toBe(file.sha256);
  });
});
