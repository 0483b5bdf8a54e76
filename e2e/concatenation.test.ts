import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeFile, MiB, readRange, sha256, type TestFile } from './support/files.js';
import { Scope, withTimeout } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS } from './support/stores.js';
import { download, fetchWithin, head, OCTET, patch, RawRequest, startClientUpload, TUS } from './support/tus.js';

/**
 * Parallel uploads (tus concatenation) with the real tus-js-client and raw requests, on
 * every store: on S3, partials of 5 MiB and more are copied inside S3 (UploadPartCopy),
 * smaller ones streamed.
 */
describe.each(STORE_KINDS)('[%s] concatenation: parallel uploads', (kind) => {
  const fileScope = new Scope();
  const testScope = new Scope();
  let big: TestFile;
  let small: TestFile;

  beforeAll(async () => {
    const dir = await fileScope.tempDir();
    big = await makeFile(dir, 'parallel-256mib.bin', 256 * MiB, 'parallel-256');
    small = await makeFile(dir, 'parallel-6mib.bin', 6 * MiB + 123, 'parallel-6');
  });
  afterEach(() => testScope.dispose());
  afterAll(() => fileScope.dispose());

  it('tus-js-client with parallelUploads: 4 uploads 256 MiB byte-identically; only the final upload is kept and processed', async () => {
    const store = await createTestStore(kind, testScope);
    const server = await testScope.server(store.startOptions());
    const run = startClientUpload(
      fs.createReadStream(big.path),
      { endpoint: server.endpoint, parallelUploads: 4, chunkSize: 16 * MiB, metadata: { filename: 'parallel.bin' } },
      180_000,
    );
    const url = await run.done;
    const id = uploadIdOf(url);

    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.length).toBe(big.size);
    expect(state.offset).toBe(big.size);
    expect(state.headers.get('upload-concat')).toMatch(/^final;\/files\/\S+ \/files\/\S+ \/files\/\S+ \/files\/\S+$/);
    expect(state.headers.get('upload-metadata')).toBe(`filename ${Buffer.from('parallel.bin').toString('base64')}`);

    const got = await download(url, {}, 120_000);
    expect(got.bytes).toBe(big.size);
    expect(got.sha256).toBe(big.sha256);
    // The partials were removed: what is stored is the final upload and nothing else.
    expect(await store.list()).toEqual(store.finishedObjects(id));
    // On S3, 64 MiB partials are copied inside S3, not read through the server.
    const built = server.logs().find((line) => line.msg === 'final upload built from partial uploads');
    expect(built?.how).toBe(kind === 's3' ? 'copied in the store' : 'streamed');

    // Processed once, as the final upload, with the right digest.
    const deadline = Date.now() + 60_000;
    let status: { state: string; processors: Record<string, { result?: unknown }> } = { state: '', processors: {} };
    while (Date.now() < deadline) {
      status = (await (await fetchWithin(`${server.url}/uploads/${id}`)).json()) as typeof status;
      if (status.state === 'done') break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(status.state).toBe('done');
    expect(JSON.stringify(status.processors.sha256?.result)).toContain(big.sha256);
  }, 300_000);

  it('partials smaller than 5 MiB are streamed into the final upload', async () => {
    const store = await createTestStore(kind, testScope);
    const server = await testScope.server(store.startOptions());
    const url = await startClientUpload(fs.createReadStream(small.path), { endpoint: server.endpoint, parallelUploads: 4 }).done;
    const got = await download(url);
    expect(got.sha256).toBe(small.sha256);
    expect(await store.list()).toEqual(store.finishedObjects(uploadIdOf(url)));
    expect(server.logs().find((line) => line.msg === 'final upload built from partial uploads')?.how).toBe('streamed');
  }, 120_000);

  it('a partial interrupted by a SIGKILL of the server resumes after the restart, and the final upload is byte-identical', async () => {
    const store = await createTestStore(kind, testScope);
    const first = await testScope.server(store.startOptions());
    const half = 8 * MiB;
    const create = async (endpoint: string, length: number) => {
      const res = await fetchWithin(endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(length), 'Upload-Concat': 'partial' } });
      expect(res.status).toBe(201);
      return new URL(res.headers.get('location') ?? '', endpoint).pathname;
    };
    const bytesA = await readRange(big.path, 0, half);
    const bytesB = await readRange(big.path, half, 3 * half);
    const pathA = await create(first.endpoint, bytesA.length);
    const pathB = await create(first.endpoint, bytesB.length);
    expect((await patch(`${first.url}${pathA}`, 0, new Uint8Array(bytesA))).status).toBe(204);

    // B: half of its bytes sent, then the server is killed mid-PATCH.
    const inFlight = new RawRequest(`${first.url}${pathB}`, 'PATCH', { ...TUS, 'Content-Type': OCTET, 'Upload-Offset': '0', 'Content-Length': String(bytesB.length) });
    await inFlight.write(bytesB.subarray(0, 3 * MiB));
    await new Promise((resolve) => setTimeout(resolve, 300));
    first.kill('SIGKILL');
    expect((await withTimeout(first.exited, 10_000, 'the killed server to exit')).signal).toBe('SIGKILL');

    const second = await testScope.server(store.startOptions());
    const stateB = await head(`${second.url}${pathB}`);
    expect(stateB.headers.get('upload-concat')).toBe('partial');
    const resumeAt = stateB.offset ?? 0;
    expect(resumeAt).toBeLessThan(bytesB.length);
    expect((await patch(`${second.url}${pathB}`, resumeAt, new Uint8Array(bytesB.subarray(resumeAt)))).status).toBe(204);

    const final = await fetchWithin(second.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Concat': `final;${pathA} ${second.url}${pathB}` } });
    expect(final.status).toBe(201);
    const url = new URL(final.headers.get('location') ?? '', second.endpoint).toString();
    const got = await download(url);
    expect(got.sha256).toBe(sha256(Buffer.concat([bytesA, bytesB])));
  }, 120_000);

  it('builds a final upload once when two identical requests race, and answers both with its URL', async () => {
    const store = await createTestStore(kind, testScope);
    const server = await testScope.server(store.startOptions());
    const parts: string[] = [];
    for (const content of ['first part ', 'second part']) {
      const res = await fetchWithin(server.endpoint, {
        method: 'POST',
        headers: { ...TUS, 'Upload-Length': String(content.length), 'Upload-Concat': 'partial', 'Content-Type': OCTET },
        body: content,
      });
      expect(res.status).toBe(201);
      parts.push(new URL(res.headers.get('location') ?? '', server.endpoint).pathname);
    }
    const request = () => fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Concat': `final;${parts.join(' ')}` } });
    const answers = await Promise.all([request(), request(), request()]);
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201]);
    const locations = new Set(answers.map((a) => a.headers.get('location')));
    expect(locations.size).toBe(1);
    const url = new URL([...locations][0] ?? '', server.endpoint).toString();
    expect(await (await fetchWithin(url)).text()).toBe('first part second part');
    const patched = await patch(url, 22, new Uint8Array([1]));
    expect(patched.status).toBe(403);
  });
});
