import fs from 'node:fs';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseDisposition } from 'content-disposition';
import type { HttpRequest } from 'tus-js-client';
import { ByteSource, KiB, makeFile, MiB, readRange, sha256, type TestFile } from './support/files.js';
import { Scope, type ServerProcess } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { createUpload, download, fetchWithin, head, patch, startClientUpload, TUS } from './support/tus.js';

/** Full uploads through the real tus-js-client, and the bytes read back with GET, on every storage kind. */
describe.each(STORE_KINDS)('[%s] uploading with tus-js-client and downloading', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let file: TestFile;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions());
    const dir = await scope.tempDir();
    file = await makeFile(dir, 'source-64mib.bin', 64 * MiB, 'upload-64');
  });
  afterAll(() => scope.dispose());

  it('uploads 64 MiB in 8 MiB chunks; GET returns the same bytes, Content-Length and Content-Disposition', async () => {
    const patches: number[] = [];
    const run = startClientUpload(fs.createReadStream(file.path), {
      endpoint: server.endpoint,
      chunkSize: 8 * MiB,
      metadata: { filename: 'holiday video.mp4', filetype: 'video/mp4' },
      onChunkComplete: (chunkSize) => patches.push(chunkSize),
    });
    const url = await run.done;

    expect(url.startsWith(`${server.url}/files/`)).toBe(true);
    expect(patches).toEqual(Array.from({ length: 8 }, () => 8 * MiB));
    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.offset).toBe(file.size);
    expect(state.length).toBe(file.size);

    // Stored as one object and its record: no part or multipart upload left open on S3.
    const id = uploadIdOf(url);
    expect(await store.objectsOf(id)).toEqual(store.finishedObjects(id));
    expect(await store.storedBytes(id)).toBe(file.size);

    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe(String(file.size));
    expect(got.bytes).toBe(file.size);
    expect(got.sha256).toBe(file.sha256);
    expect(got.headers.get('content-type')).toBe('video/mp4');
    expect(parseDisposition(got.headers.get('content-disposition') ?? '')).toEqual({ type: 'inline', parameters: { filename: 'holiday video.mp4' } });
    expect(got.headers.get('accept-ranges')).toBe('bytes');

    // A range in the middle, crossing a chunk boundary: 206 with exactly those bytes.
    const start = 8 * MiB - 1000;
    const end = 8 * MiB + 999;
    const ranged = await fetchWithin(url, { headers: { Range: `bytes=${start}-${end}` } });
    const rangedBody = Buffer.from(await ranged.arrayBuffer());
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes ${start}-${end}/${file.size}`);
    expect(ranged.headers.get('content-length')).toBe('2000');
    expect(sha256(rangedBody)).toBe(sha256(await readRange(file.path, start, end + 1)));

    // A suffix range: the last 4 KiB.
    const suffix = await fetchWithin(url, { headers: { Range: 'bytes=-4096' } });
    const suffixBody = Buffer.from(await suffix.arrayBuffer());
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get('content-range')).toBe(`bytes ${file.size - 4096}-${file.size - 1}/${file.size}`);
    expect(suffixBody.equals(await readRange(file.path, file.size - 4096, file.size))).toBe(true);

    // A range past the end: 416 with the size.
    const outside = await fetchWithin(url, { headers: { Range: `bytes=${file.size}-` } });
    await outside.arrayBuffer();
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${file.size}`);
  });

  it('uploads 64 MiB in a single PATCH request', async () => {
    const methods: string[] = [];
    const run = startClientUpload(fs.createReadStream(file.path), {
      endpoint: server.endpoint,
      // no chunkSize: the whole file in one request
      metadata: { filename: 'one-shot.bin' },
      onBeforeRequest: (req: HttpRequest) => {
        methods.push(req.getMethod());
      },
    });
    const url = await run.done;

    expect(methods).toEqual(['POST', 'PATCH']);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe(String(file.size));
    expect(got.sha256).toBe(file.sha256);
    // Unknown types are never rendered inline.
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(parseDisposition(got.headers.get('content-disposition') ?? '')).toEqual({ type: 'attachment', parameters: { filename: 'one-shot.bin' } });
  });

  it('uploads with creation-with-upload (the first bytes in the POST) from a Buffer', async () => {
    const data = await readRange(file.path, 0, 3 * MiB + 123);
    const methods: string[] = [];
    const run = startClientUpload(data, {
      endpoint: server.endpoint,
      chunkSize: 2 * MiB,
      uploadDataDuringCreation: true,
      metadata: { filename: 'naïve résumé.pdf' },
      onBeforeRequest: (req: HttpRequest) => {
        methods.push(req.getMethod());
      },
    });
    const url = await run.done;

    expect(methods).toEqual(['POST', 'PATCH']);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(sha256(data));
    // Non-ASCII names travel as RFC 5987 filename*, with an ASCII fallback.
    const disposition = parseDisposition(got.headers.get('content-disposition') ?? '');
    expect(disposition.type).toBe('attachment');
    expect(disposition.parameters.filename).toBe('naïve résumé.pdf');
    expect(disposition.parameters['filename*']).toBe(`UTF-8''${encodeURIComponent('naïve résumé.pdf')}`);
  });

  it('uploads a stream of unknown length (Upload-Defer-Length), declaring the length in the last PATCH', async () => {
    const size = 5 * MiB + 321;
    const source = new ByteSource('deferred');
    const pieces = Math.ceil(size / (256 * KiB));
    // A generic Readable (not a file): tus-js-client cannot know its size.
    const stream = Readable.from(
      (function* () {
        for (let i = 0; i < pieces; i += 1) yield source.bytes(i * 256 * KiB, Math.min(256 * KiB, size - i * 256 * KiB));
      })(),
    );
    const requests: { method: string; defer?: string; length?: string }[] = [];
    const run = startClientUpload(stream, {
      endpoint: server.endpoint,
      chunkSize: 2 * MiB,
      uploadLengthDeferred: true,
      onBeforeRequest: (req: HttpRequest) => {
        requests.push({ method: req.getMethod(), defer: req.getHeader('Upload-Defer-Length'), length: req.getHeader('Upload-Length') });
      },
    });
    const url = await run.done;

    expect(requests[0]).toEqual({ method: 'POST', defer: '1', length: undefined });
    expect(requests.at(-1)).toEqual({ method: 'PATCH', defer: undefined, length: String(size) });
    const state = await head(url);
    expect(state.length).toBe(size);
    expect(state.offset).toBe(size);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(sha256(source.bytes(0, size)));
  });

  it('uploads with X-HTTP-Method-Override (POST carrying PATCH) and to the endpoint without a trailing slash', async () => {
    const data = await readRange(file.path, 0, 3 * MiB);
    const seen: string[] = [];
    const run = startClientUpload(data, {
      endpoint: `${server.url}/files`,
      chunkSize: MiB,
      overridePatchMethod: true,
      onBeforeRequest: (req: HttpRequest) => {
        seen.push(`${req.getMethod()} ${req.getHeader('X-HTTP-Method-Override') ?? ''}`.trim());
      },
    });
    const url = await run.done;

    expect(seen).toEqual(['POST', 'POST PATCH', 'POST PATCH', 'POST PATCH']);
    expect(url.startsWith(`${server.url}/files/`)).toBe(true);
    const got = await download(url);
    expect(got.sha256).toBe(sha256(data));
  });

  it('terminates an unfinished upload when the client aborts with shouldTerminate (DELETE)', async () => {
    const data = await readRange(file.path, 0, 4 * MiB);
    let aborted: Promise<void> | undefined;
    const run = startClientUpload(data, {
      endpoint: server.endpoint,
      chunkSize: MiB,
      onChunkComplete: (_size, accepted) => {
        // After the first chunk: stop and delete the upload on the server.
        if (accepted >= MiB && !aborted) aborted = run.abort(true);
      },
    });
    await expect(run.done).rejects.toThrow('aborted');
    await aborted;
    const url = run.upload.url ?? '';
    expect(url).not.toBe('');
    expect(await store.objectsOf(uploadIdOf(url))).toEqual([]);

    const state = await head(url);
    expect(state.status).toBe(404);
    const got = await fetchWithin(url);
    await got.arrayBuffer();
    expect(got.status).toBe(404);
    const again = await fetchWithin(url, { method: 'DELETE', headers: TUS });
    await again.arrayBuffer();
    expect(again.status).toBe(404);
  });

  it('DELETE removes everything stored for an unfinished upload (on S3: the multipart upload, <id>.info and <id>.part)', async () => {
    const url = await createUpload(server.endpoint, { length: 4 * MiB, metadata: { filename: 'doomed.bin' } });
    const id = uploadIdOf(url);
    const data = new ByteSource('doomed').bytes(0, MiB);
    expect((await patch(url, 0, data)).status).toBe(204);
    // 1 MiB is less than a part: on S3 it waits in <id>.part beside the open multipart upload.
    const before = await store.objectsOf(id);
    if (kind === 's3') expect(before).toEqual([`${id}.info`, `${id}.part`, `multipart:${id}`]);
    else expect(before).toEqual([id, `${id}.json`]);
    expect((await store.readStored(id)).equals(data)).toBe(true);

    const deleted = await fetchWithin(url, { method: 'DELETE', headers: TUS });
    await deleted.arrayBuffer();
    expect(deleted.status).toBe(204);
    expect(await store.objectsOf(id)).toEqual([]);
    expect((await head(url)).status).toBe(404);
  });

  it('uploads an empty file: finished at creation, GET answers 200 with no bytes', async () => {
    const methods: string[] = [];
    const run = startClientUpload(Buffer.alloc(0), {
      endpoint: server.endpoint,
      metadata: { filename: 'empty.txt', filetype: 'text/plain' },
      onBeforeRequest: (req: HttpRequest) => {
        methods.push(req.getMethod());
      },
    });
    const url = await run.done;
    expect(methods).toEqual(['POST']);
    const state = await head(url);
    expect(state.offset).toBe(0);
    expect(state.length).toBe(0);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe('0');
    expect(got.bytes).toBe(0);
    expect(got.headers.get('content-type')).toBe('text/plain');
  });

  it('refuses to serve an unfinished upload (409) and answers 404 for an unknown one', async () => {
    const create = await fetchWithin(server.endpoint, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '10' } });
    await create.arrayBuffer();
    expect(create.status).toBe(201);
    const url = new URL(create.headers.get('location') ?? '', server.endpoint).toString();

    const unfinished = await fetchWithin(url);
    expect(unfinished.status).toBe(409);
    expect(await unfinished.text()).toContain('ERR_UPLOAD_NOT_FINISHED');

    const missing = await fetchWithin(`${server.url}/files/0123456789abcdef0123456789abcdef`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
  });
});
