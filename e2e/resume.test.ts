import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRequest } from 'tus-js-client';
import { makeFile, MiB, type TestFile } from './support/files.js';
import { Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { download, head, slowHttpStack, startClientUpload } from './support/tus.js';
import { uploadIdOf } from './support/status.js';


/** An upload interrupted by the client and resumed by a new tus-js-client Upload, on every storage kind. */
describe.each(STORE_KINDS)('[%s] resuming an aborted upload', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let file: TestFile;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions());
    const dir = await scope.tempDir();
    file = await makeFile(dir, 'source-32mib.bin', 32 * MiB, 'resume-32');
  });
  afterAll(() => scope.dispose());

  it('aborts at ~40% and resumes with a new Upload from the offset the server reports', async () => {
    const chunkSize = 8 * MiB;
    let patchesSent = 0;
    let uploadUrl: string | undefined;
    let aborting: Promise<void> | undefined;
    const aborted = new Promise<number>((resolve, reject) => {
      const first = startClientUpload(fs.createReadStream(file.path), {
        endpoint: server.endpoint,
        chunkSize,
        metadata: { filename: 'resumed.bin' },
        // ~16 MiB/s: the abort at 40% (12.8 MiB) lands inside the second 8 MiB PATCH.
        httpStack: slowHttpStack(16 * MiB),
        onBeforeRequest: (req: HttpRequest) => {
          if (req.getMethod() === 'PATCH') patchesSent += 1;
        },
        onUploadUrlAvailable: () => {
          uploadUrl = first.upload.url ?? undefined;
        },
        onError: reject,
        onProgress: (bytesSent) => {
          if (!aborting && bytesSent >= 0.4 * file.size) {
            aborting = first.abort();
            resolve(bytesSent);
          }
        },
      });
    });
    const sentAtAbort = await withTimeout(aborted, 60_000, 'the first client to reach 40%');
    await aborting;
    expect(uploadUrl).toBeDefined();
    const url = uploadUrl ?? '';
    expect(sentAtAbort).toBeLessThan(file.size);

    // The server has finished with every PATCH the first client sent (it logs each one when
    // it has answered, so the cut request's bytes are on disk and its lock is released).
    const id = uploadIdOf(url);
    await server.waitForLog(
      () => server.logs().filter((line) => line.method === 'PATCH' && line.uploadId === id).length >= patchesSent,
      `${patchesSent} PATCH requests for ${id} answered`,
    );
    const before = await head(url);
    expect(before.status).toBe(200);
    expect(before.length).toBe(file.size);
    const resumeFrom = before.offset ?? -1;
    expect(resumeFrom).toBeGreaterThan(0);
    // The first chunk (8 MiB) completed before the abort; the cut second one kept what arrived
    // (progress counts bytes handed to the socket, so the server has at most that many).
    expect(resumeFrom).toBeGreaterThan(chunkSize);
    expect(resumeFrom).toBeLessThanOrEqual(sentAtAbort + 1 * MiB);
    expect(resumeFrom).toBeLessThan(file.size);
    // The offset is what the store holds (on S3: the parts it lists plus <id>.part), not a number in memory.
    expect(await store.storedBytes(id)).toBe(resumeFrom);

    // A brand-new client that knows only the URL.
    const progress: number[] = [];
    const chunks: { chunkSize: number; accepted: number }[] = [];
    const methods: string[] = [];
    const second = startClientUpload(fs.createReadStream(file.path), {
      uploadUrl: url,
      chunkSize,
      onBeforeRequest: (req: HttpRequest) => {
        methods.push(req.getMethod());
      },
      onProgress: (bytesSent) => progress.push(bytesSent),
      onChunkComplete: (size, accepted) => chunks.push({ chunkSize: size, accepted }),
    });
    expect(await second.done).toBe(url);

    expect(methods[0]).toBe('HEAD');
    expect(methods).not.toContain('POST');
    // It did not restart from 0: its first progress report and first chunk start at the server's offset...
    expect(progress[0]).toBeGreaterThanOrEqual(resumeFrom);
    const firstChunk = chunks[0];
    expect(firstChunk).toBeDefined();
    expect((firstChunk?.accepted ?? 0) - (firstChunk?.chunkSize ?? 0)).toBe(resumeFrom);
    // ...and it sent exactly the bytes that were missing.
    expect(chunks.reduce((sum, c) => sum + c.chunkSize, 0)).toBe(file.size - resumeFrom);

    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(file.size);
    expect(got.sha256).toBe(file.sha256);
  });
});
