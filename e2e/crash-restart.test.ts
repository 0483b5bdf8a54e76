import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeFile, MiB, type TestFile } from './support/files.js';
import { Scope, withTimeout } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS } from './support/stores.js';
import { download, head, slowHttpStack, startClientUpload } from './support/tus.js';

/**
 * The server dies without warning in the middle of a PATCH; a new process on the same storage
 * resumes. Nothing survives in memory: on S3 the offset comes back from the .info object,
 * ListParts and <id>.part.
 */
describe.each(STORE_KINDS)('[%s] server killed with SIGKILL mid-upload', (kind) => {
  const fileScope = new Scope();
  const testScope = new Scope();
  let file: TestFile;

  beforeAll(async () => {
    const dir = await fileScope.tempDir();
    file = await makeFile(dir, 'source-32mib.bin', 32 * MiB, 'crash-32');
  });
  afterEach(() => testScope.dispose());
  afterAll(() => fileScope.dispose());

  it('restarts on the same storage and the upload resumes from the persisted offset to a byte-identical file', async () => {
    // STORAGE_DIR, and on S3 the same bucket and S3_PREFIX (S3_PART_SIZE stays 8 MiB, one part per chunk).
    const store = await createTestStore(kind, testScope);
    const first = await testScope.server(store.startOptions());
    const chunkSize = 8 * MiB;
    const killAt = 12 * MiB;

    let killed = false;
    let patchInFlight = false;
    const run = startClientUpload(fs.createReadStream(file.path), {
      endpoint: first.endpoint,
      chunkSize,
      metadata: { filename: 'survivor.bin' },
      // Slow enough (16 MiB/s) that the kill lands while the second PATCH is streaming.
      httpStack: slowHttpStack(16 * MiB),
      onProgress: (bytesSent) => {
        if (!killed && bytesSent >= killAt) {
          killed = true;
          patchInFlight = bytesSent < 2 * chunkSize;
          first.kill('SIGKILL');
        }
      },
    });
    const clientError = await run.done.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(killed).toBe(true);
    expect(patchInFlight).toBe(true);
    // The client noticed the dead server (no retries configured).
    expect(clientError).toBeInstanceOf(Error);
    const exit = await withTimeout(first.exited, 10_000, 'the killed server to exit');
    expect(exit.signal).toBe('SIGKILL');
    const oldUrl = run.upload.url;
    expect(oldUrl).toBeTruthy();

    // Same storage, new process, new port: the upload lives at the same path on the new origin.
    const second = await testScope.server(store.startOptions());
    const url = new URL(new URL(oldUrl ?? '').pathname, second.url).toString();
    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.length).toBe(file.size);
    // At least the completed first chunk survived; the upload is not finished.
    expect(state.offset).toBeGreaterThanOrEqual(chunkSize);
    expect(state.offset).toBeLessThan(file.size);
    expect(state.headers.get('upload-metadata')).toBe(`filename ${Buffer.from('survivor.bin').toString('base64')}`);
    const resumeFrom = state.offset ?? 0;
    expect(await store.storedBytes(uploadIdOf(url))).toBe(resumeFrom);

    const chunks: { size: number; accepted: number }[] = [];
    const resumed = startClientUpload(fs.createReadStream(file.path), {
      uploadUrl: url,
      chunkSize,
      onChunkComplete: (size, accepted) => chunks.push({ size, accepted }),
    });
    expect(await resumed.done).toBe(url);
    expect((chunks[0]?.accepted ?? 0) - (chunks[0]?.size ?? 0)).toBe(resumeFrom);
    // Only the missing bytes were sent again.
    expect(chunks.reduce((sum, c) => sum + c.size, 0)).toBe(file.size - resumeFrom);

    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(file.size);
    expect(got.sha256).toBe(file.sha256);
  });

  it('killed right after a PATCH is answered: the restarted server reports exactly the acknowledged offset (on S3 a part plus <id>.part)', async () => {
    const store = await createTestStore(kind, testScope);
    const first = await testScope.server(store.startOptions());
    // 3 MiB chunks against 8 MiB parts: after 9 MiB, S3 holds one 6 MiB part and 3 MiB in <id>.part.
    const chunkSize = 3 * MiB;
    const acknowledged = 3 * chunkSize;
    const run = startClientUpload(fs.createReadStream(file.path), {
      endpoint: first.endpoint,
      chunkSize,
      metadata: { filename: 'acknowledged.bin' },
      onChunkComplete: (_size, accepted) => {
        // Synchronous, before the client sends the next PATCH: nothing after this offset reaches the server.
        if (accepted === acknowledged) first.kill('SIGKILL');
      },
    });
    await run.done.catch(() => undefined);
    expect((await withTimeout(first.exited, 10_000, 'the killed server to exit')).signal).toBe('SIGKILL');
    const id = uploadIdOf(run.upload.url ?? '');

    const second = await testScope.server(store.startOptions());
    const url = `${second.endpoint}${id}`;
    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.offset).toBe(acknowledged);
    expect(await store.storedBytes(id)).toBe(acknowledged);
    if (kind === 's3') expect(await store.objectsOf(id)).toEqual([`${id}.info`, `${id}.part`, `multipart:${id}`]);

    const chunks: { size: number; accepted: number }[] = [];
    const resumed = startClientUpload(fs.createReadStream(file.path), {
      uploadUrl: url,
      chunkSize: 8 * MiB,
      onChunkComplete: (size, accepted) => chunks.push({ size, accepted }),
    });
    expect(await resumed.done).toBe(url);
    expect(chunks.reduce((sum, c) => sum + c.size, 0)).toBe(file.size - acknowledged);
    const got = await download(url);
    expect(got.bytes).toBe(file.size);
    expect(got.sha256).toBe(file.sha256);
    expect(await store.objectsOf(id)).toEqual(store.finishedObjects(id));
  });
});
