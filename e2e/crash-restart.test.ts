import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeFile, MiB, type TestFile } from './support/files.js';
import { Scope, withTimeout } from './support/server-process.js';
import { download, head, slowHttpStack, startClientUpload } from './support/tus.js';

/** The server dies without warning in the middle of a PATCH; a new process on the same storage resumes. */
describe('server killed with SIGKILL mid-upload', () => {
  const fileScope = new Scope();
  const testScope = new Scope();
  let file: TestFile;

  beforeAll(async () => {
    const dir = await fileScope.tempDir();
    file = await makeFile(dir, 'source-32mib.bin', 32 * MiB, 'crash-32');
  });
  afterEach(() => testScope.dispose());
  afterAll(() => fileScope.dispose());

  it('restarts on the same STORAGE_DIR and the upload resumes to a byte-identical file', async () => {
    const storageDir = await testScope.tempDir('tus-e2e-crash-storage-');
    const first = await testScope.server({ storageDir });
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
    const second = await testScope.server({ storageDir });
    const url = new URL(new URL(oldUrl ?? '').pathname, second.url).toString();
    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.length).toBe(file.size);
    // At least the completed first chunk survived; the upload is not finished.
    expect(state.offset).toBeGreaterThanOrEqual(chunkSize);
    expect(state.offset).toBeLessThan(file.size);
    expect(state.headers.get('upload-metadata')).toBe(`filename ${Buffer.from('survivor.bin').toString('base64')}`);
    const resumeFrom = state.offset ?? 0;

    const chunks: { size: number; accepted: number }[] = [];
    const resumed = startClientUpload(fs.createReadStream(file.path), {
      uploadUrl: url,
      chunkSize,
      onChunkComplete: (size, accepted) => chunks.push({ size, accepted }),
    });
    expect(await resumed.done).toBe(url);
    expect((chunks[0]?.accepted ?? 0) - (chunks[0]?.size ?? 0)).toBe(resumeFrom);

    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(file.size);
    expect(got.sha256).toBe(file.sha256);
  });
});
