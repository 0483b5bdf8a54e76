import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteSource, KiB, makeFile, MiB, sha256, type TestFile } from './support/files.js';
import { Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { createUpload, download, head, patch, rawPatch, startClientUpload, waitForStoredBytes, type RawResponse } from './support/tus.js';
import { uploadIdOf } from './support/status.js';


describe.each(STORE_KINDS)('[%s] concurrency', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let dir: string;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions());
    dir = await scope.tempDir();
  });
  afterAll(() => scope.dispose());

  it('takes 20 uploads at once, each byte-identical', async () => {
    const count = 20;
    const files: TestFile[] = [];
    for (let i = 0; i < count; i += 1) {
      // 2 MiB to ~4 MiB, none a multiple of the chunk size.
      files.push(await makeFile(dir, `parallel-${i}.bin`, 2 * MiB + i * 100 * KiB + i + 1, `parallel-${i}`));
    }
    const runs = files.map((file, i) =>
      startClientUpload(
        // Half as file streams (read per chunk), half from memory.
        i % 2 === 0 ? fs.createReadStream(file.path) : fs.readFileSync(file.path),
        { endpoint: server.endpoint, chunkSize: (1 + (i % 3)) * MiB, metadata: { filename: path.basename(file.path) } },
        120_000,
      ),
    );
    const urls = await Promise.all(runs.map((run) => run.done));

    expect(new Set(urls).size).toBe(count);
    const results = await Promise.all(urls.map((url) => download(url)));
    results.forEach((result, i) => {
      expect(result.status, `upload ${i}`).toBe(200);
      expect(result.bytes, `upload ${i}`).toBe(files[i]?.size);
      expect(result.sha256, `upload ${i}`).toBe(files[i]?.sha256);
    });
  });

  it('lets at most one of two concurrent PATCHes at the same offset succeed, without mixing their bytes', async () => {
    const size = 4 * MiB;
    // Two different payloads for the same upload: if both were written, the file would mix them.
    const payloads = { a: new ByteSource('contender-a').bytes(0, size), b: new ByteSource('contender-b').bytes(0, size) };
    const url = await createUpload(server.endpoint, { length: size });
    const id = uploadIdOf(url);

    // Both at offset 0, each sending its whole body slowly (64 KiB every 80 ms: ~5 s, longer than the
    // 3 s @tus/server gives a lock holder to let go once another request asks for the lock).
    const a = rawPatch(url, 0, { 'Content-Length': size });
    const aWriting = a.writePaced(payloads.a, 64 * KiB, 80);
    // B starts once A's bytes are reaching the disk, so A holds the upload's lock.
    await waitForStoredBytes(() => store.bytesArrived(id), 1);
    const b = rawPatch(url, 0, { 'Content-Length': size });
    const bWriting = b.writePaced(payloads.b, 64 * KiB, 80);

    const settle = (response: Promise<RawResponse>) =>
      withTimeout(response, 60_000, 'a PATCH to be answered').then(
        (r) => r,
        (error: unknown) => ({ status: 0, headers: {}, body: String(error) }) as RawResponse,
      );
    const [ra, rb] = await Promise.all([settle(a.response), settle(b.response)]);
    await Promise.all([aWriting, bWriting]);
    a.destroy();
    b.destroy();

    const statuses = [ra.status, rb.status];
    const winners = [ra, rb].filter((r) => r.status === 204);
    expect(winners.length, `statuses ${statuses.join(', ')}`).toBeLessThanOrEqual(1);
    // The other one is told why: the offset moved (409), the upload is locked (423) or the
    // request was interrupted (400). (0 would mean no answer at all.)
    for (const r of [ra, rb]) if (r.status !== 204) expect([409, 423, 400], `${r.status} ${r.body}`).toContain(r.status);

    const state = await head(url);
    expect(state.status).toBe(200);
    const offset = state.offset ?? 0;
    // 4 MiB is less than an S3 part: there it is all in <id>.part, which can be read back.
    const onDisk = await store.readStored(id);
    expect(onDisk.byteLength).toBe(offset);

    // What is stored is a prefix of exactly one payload.
    const matchesA = onDisk.equals(payloads.a.subarray(0, offset));
    const matchesB = onDisk.equals(payloads.b.subarray(0, offset));
    expect(matchesA || matchesB || offset === 0).toBe(true);
    const winner = ra.status === 204 ? 'a' : rb.status === 204 ? 'b' : matchesB && !matchesA ? 'b' : 'a';
    const winning = winners[0];
    if (winning) expect(Number(winning.headers['upload-offset'])).toBe(offset);
    if (offset > 0) expect(winner === 'a' ? matchesA : matchesB).toBe(true);

    // Finish the upload from HEAD's offset with the rest of the winner's payload.
    const payload = payloads[winner];
    if (offset < size) {
      const rest = await patch(url, offset, payload.subarray(offset));
      expect(rest.status).toBe(204);
      expect(rest.offset).toBe(size);
    }
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(sha256(payload));
  });
});
