import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DetailedError, HttpRequest } from 'tus-js-client';
import { startCorruptingProxy, type CorruptingProxy } from './support/corrupting-proxy.js';
import { makeFile, MiB, readRange, sha256, type TestFile } from './support/files.js';
import { Scope, type ServerProcess } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { createUpload, download, fetchWithin, head, patch, startClientUpload, TUS } from './support/tus.js';

const sha256Checksum = (data: Uint8Array) => `sha256 ${createHash('sha256').update(data).digest('base64')}`;

/**
 * The checksum extension end to end, on every storage kind: the real server process, raw
 * PATCHes, and the real tus-js-client over a link that corrupts one chunk.
 */
describe.each(STORE_KINDS)('[%s] Upload-Checksum', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let file: TestFile;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    // 5 MiB parts on S3: the first PATCH below fills one part, so S3 holds a real part before the rejected one.
    server = await scope.server(store.startOptions({ S3_PART_SIZE: '5MiB' }));
    file = await makeFile(await scope.tempDir(), 'checksum-24mib.bin', 24 * MiB, 'checksum-24');
  });
  afterAll(() => scope.dispose());

  it('a mismatched PATCH is 460 and stores none of its bytes; resent right, the upload ends byte-identical', async () => {
    const size = 12 * MiB;
    const data = await readRange(file.path, 0, size);
    const url = await createUpload(server.endpoint, { length: size });
    const id = uploadIdOf(url);
    const first = Buffer.from(data.subarray(0, 6 * MiB));
    expect((await patch(url, 0, first, { 'Upload-Checksum': sha256Checksum(first) })).status).toBe(204);
    const storedBefore = await store.storedBytes(id);
    expect(storedBefore).toBe(6 * MiB);

    const rest = Buffer.from(data.subarray(6 * MiB));
    const corrupted = Buffer.from(rest);
    corrupted[3 * MiB] = (corrupted[3 * MiB] ?? 0) ^ 0xff;
    const rejected = await patch(url, 6 * MiB, corrupted, { 'Upload-Checksum': sha256Checksum(rest) });
    expect(rejected.status).toBe(460);
    expect(rejected.text.startsWith('ERR_CHECKSUM_MISMATCH: ')).toBe(true);
    // The offset, and what the store holds (on S3: the parts it lists plus <id>.part), did not move.
    expect((await head(url)).offset).toBe(6 * MiB);
    expect(await store.storedBytes(id)).toBe(storedBefore);

    const resent = await patch(url, 6 * MiB, rest, { 'Upload-Checksum': sha256Checksum(rest) });
    expect(resent.status).toBe(204);
    expect(resent.offset).toBe(size);
    const got = await download(url);
    expect(got.bytes).toBe(size);
    expect(got.sha256).toBe(sha256(data));
  });

  it('malformed or unsupported Upload-Checksum values are 400, never 5xx, and store nothing', async () => {
    const body = Buffer.from('checksum me');
    const url = await createUpload(server.endpoint, { length: body.length });
    for (const value of ['sha256', 'sha256 %%%', `sha256 ${createHash('md5').update(body).digest('base64')}`, `crc32 ${Buffer.alloc(4).toString('base64')}`, `sha256  ${createHash('sha256').update(body).digest('base64')}`]) {
      const res = await patch(url, 0, body, { 'Upload-Checksum': value });
      expect(res.status, `${value}: ${res.text}`).toBe(400);
      expect(res.text).toMatch(/^ERR_(INVALID_CHECKSUM|UNSUPPORTED_CHECKSUM_ALGORITHM): [^\n]+\n$/);
    }
    expect((await head(url)).offset).toBe(0);
  });

  it('creation-with-upload: a matching body is stored, a mismatching one creates nothing', async () => {
    const body = Buffer.from('created with its first bytes');
    const post = (checksum: string) =>
      fetchWithin(server.endpoint, {
        method: 'POST',
        headers: { ...TUS, 'Upload-Length': String(2 * body.length), 'Content-Type': 'application/offset+octet-stream', 'Upload-Checksum': checksum },
        body,
      });
    const bad = await post(sha256Checksum(Buffer.from('something else')));
    expect(bad.status).toBe(460);
    expect(bad.headers.get('location')).toBeNull();
    await bad.text();
    const good = await post(sha256Checksum(body));
    expect(good.status).toBe(201);
    expect(good.headers.get('upload-offset')).toBe(String(body.length));
    const url = new URL(good.headers.get('location') ?? '', server.endpoint).toString();
    expect((await head(url)).offset).toBe(body.length);
  });

  describe('tus-js-client over a link that corrupts one PATCH', () => {
    let proxy: CorruptingProxy;

    beforeAll(async () => {
      // The third request is the second PATCH (POST, PATCH, PATCH...): one bit of it flips on the way.
      proxy = await startCorruptingProxy(server.url, { corrupt: ({ method, index }) => method === 'PATCH' && index === 2, byte: 3 * MiB + 17 });
      scope.defer(() => proxy.close());
    });

    it('gets 460, retries the chunk because onShouldRetry allows it, and ends byte-identical', async () => {
      const chunkSize = 8 * MiB;
      const retried: number[] = [];
      const run = startClientUpload(fs.createReadStream(file.path), {
        endpoint: `${proxy.url}/files/`,
        chunkSize,
        retryDelays: [0, 200, 500],
        metadata: { filename: 'checksummed.bin' },
        // tus-js-client gives no access to the chunk it sends: the chunk is the file's slice
        // from Upload-Offset, chunkSize long (or to the end), read again here.
        onBeforeRequest: async (req: HttpRequest) => {
          if (req.getMethod() !== 'PATCH') return;
          const offset = Number(req.getHeader('Upload-Offset'));
          const chunk = await readRange(file.path, offset, Math.min(offset + chunkSize, file.size));
          req.setHeader('Upload-Checksum', sha256Checksum(chunk));
        },
        // A 4xx is not retried unless we say so; 460 means "send that chunk again".
        onShouldRetry: (error: DetailedError) => {
          const status = error.originalResponse?.getStatus() ?? 0;
          if (status === 460) retried.push(status);
          return status === 460 || status === 0 || status >= 500 || status === 409 || status === 423;
        },
      });
      const url = await run.done;

      const requests = proxy.requests();
      const corrupted = requests.filter((request) => request.corrupted);
      expect(corrupted).toHaveLength(1);
      expect(corrupted[0]?.status).toBe(460);
      expect(retried).toEqual([460]);
      // The corrupted chunk was sent again from the same offset, and this time accepted.
      const patches = requests.filter((request) => request.method === 'PATCH');
      expect(patches).toHaveLength(Math.ceil(file.size / chunkSize) + 1);
      expect(patches.filter((request) => request.uploadOffset === corrupted[0]?.uploadOffset).map((request) => request.status)).toEqual([460, 204]);

      const got = await download(url.replace(proxy.url, server.url));
      expect(got.bytes).toBe(file.size);
      expect(got.sha256).toBe(file.sha256);
    });
  });
});
