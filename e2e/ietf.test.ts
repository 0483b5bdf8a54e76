import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRequest, UploadOptions } from 'tus-js-client';
import { makeFile, MiB, sha256, type TestFile } from './support/files.js';
import { pollUntil, Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { download, fetchWithin, RawRequest, slowHttpStack, startClientUpload } from './support/tus.js';

/**
 * The IETF resumable upload protocol against the real server process, on every storage kind:
 * tus-js-client speaking `ietf-draft-03` (interop version 5) and `ietf-draft-05` (version 6),
 * whole uploads and uploads resumed from the stored URL after an abort, and raw requests
 * cut mid-body and resumed from the HEAD offset.
 */

const PROTOCOLS = [
  ['ietf-draft-03', 5],
  ['ietf-draft-05', 6],
] as const;

/**
 * tus-js-client 4.3.1 reads `protocol` ('tus-v1', 'ietf-draft-03', 'ietf-draft-05'; see its
 * lib/upload.js) but its type declarations do not list it yet.
 */
const speaking = (protocol: string): Partial<UploadOptions> => ({ protocol }) as Partial<UploadOptions>;

/** HEAD with the interop header: the offset and whether the upload is complete. */
async function ietfHead(url: string, version: number): Promise<{ status: number; offset: number; complete: string | null; length: string | null }> {
  const res = await fetchWithin(url, { method: 'HEAD', headers: { 'Upload-Draft-Interop-Version': String(version) } });
  return { status: res.status, offset: Number(res.headers.get('upload-offset')), complete: res.headers.get('upload-complete'), length: res.headers.get('upload-length') };
}

describe.each(STORE_KINDS)('[%s] IETF resumable uploads', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let file: TestFile;

  beforeAll(async () => {
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions());
    const dir = await scope.tempDir();
    file = await makeFile(dir, 'source-24mib.bin', 24 * MiB, 'ietf-24');
  });
  afterAll(() => scope.dispose());

  describe.each(PROTOCOLS)('tus-js-client, protocol %s', (protocol, version) => {
    it('uploads the whole file; GET returns the same bytes', async () => {
      const versions = new Set<string | undefined>();
      const run = startClientUpload(fs.createReadStream(file.path), {
        endpoint: server.endpoint,
        ...speaking(protocol),
        chunkSize: 8 * MiB,
        metadata: { filename: `${protocol}.bin` },
        onBeforeRequest: (req: HttpRequest) => void versions.add(req.getHeader('Upload-Draft-Interop-Version')),
      });
      const url = await run.done;
      expect([...versions]).toEqual([String(version)]);
      const state = await ietfHead(url, version);
      expect(state).toMatchObject({ status: 204, offset: file.size, complete: '?1', length: String(file.size) });
      const got = await download(url);
      expect(got.sha256).toBe(file.sha256);
      expect(await store.storedBytes(uploadIdOf(url))).toBe(file.size);
    });

    it('resumes after an abort from the stored URL, sending only the missing bytes', async () => {
      const chunkSize = 8 * MiB;
      let url: string | undefined;
      let aborting: Promise<void> | undefined;
      const aborted = new Promise<number>((resolve, reject) => {
        const first = startClientUpload(fs.createReadStream(file.path), {
          endpoint: server.endpoint,
          ...speaking(protocol),
          chunkSize,
          // ~16 MiB/s: the abort at 40% lands inside the second 8 MiB PATCH.
          httpStack: slowHttpStack(16 * MiB),
          onUploadUrlAvailable: () => {
            url = first.upload.url ?? undefined;
          },
          onError: reject,
          onProgress: (sent) => {
            if (!aborting && sent >= 0.4 * file.size) {
              aborting = first.abort();
              resolve(sent);
            }
          },
        });
      });
      const sentAtAbort = await withTimeout(aborted, 60_000, 'the first client to reach 40%');
      await aborting;
      expect(url).toBeDefined();
      const uploadUrl = url ?? '';

      // The cut PATCH ends on the server when its body does; then the offset is stable.
      const resumeFrom = await pollUntil(
        async () => {
          const state = await ietfHead(uploadUrl, version);
          return state.offset > chunkSize && state.offset === (await store.storedBytes(uploadIdOf(uploadUrl))) ? state.offset : undefined;
        },
        'the aborted upload to settle',
        15_000,
        100,
      );
      expect(resumeFrom).toBeLessThanOrEqual(sentAtAbort + MiB);
      expect(resumeFrom).toBeLessThan(file.size);

      const chunks: { chunkSize: number; accepted: number }[] = [];
      const methods: string[] = [];
      const second = startClientUpload(fs.createReadStream(file.path), {
        uploadUrl,
        ...speaking(protocol),
        chunkSize,
        onBeforeRequest: (req: HttpRequest) => void methods.push(req.getMethod()),
        onChunkComplete: (size, accepted) => chunks.push({ chunkSize: size, accepted }),
      });
      expect(await second.done).toBe(uploadUrl);
      expect(methods[0]).toBe('HEAD');
      expect(methods).not.toContain('POST');
      expect(chunks.reduce((sum, chunk) => sum + chunk.chunkSize, 0)).toBe(file.size - resumeFrom);
      const got = await download(uploadUrl);
      expect(got.sha256).toBe(file.sha256);
    });
  });

  it.each([3, 5, 6, 7, 8])('raw requests, version %i: a creation cut mid-body resumes from the HEAD offset', async (version) => {
    const content = Buffer.alloc(3 * MiB);
    for (let i = 0; i < content.length; i += 4096) content.writeUInt32BE(i, i);
    const complete = (done: boolean): Record<string, string> => (version === 3 ? { 'Upload-Incomplete': done ? '?0' : '?1' } : { 'Upload-Complete': done ? '?1' : '?0' });
    const creation = new RawRequest(`${server.url}/files`, 'POST', { 'Upload-Draft-Interop-Version': version, ...complete(true), 'Content-Length': content.length });
    // Node's client reports informational responses as 'information': the 104 names the upload.
    const informational = new Promise<{ status: number; location: string | undefined; version: string | undefined }>((resolve) => {
      creation.request.on('information', (info: { statusCode: number; headers: Record<string, string | string[] | undefined> }) =>
        resolve({ status: info.statusCode, location: info.headers.location as string | undefined, version: info.headers['upload-draft-interop-version'] as string | undefined }),
      );
    });
    const written = await creation.writePaced(content.subarray(0, 2 * MiB), 256 * 1024, 20);
    expect(written).toBe(2 * MiB);
    const resumption = await withTimeout(informational, 10_000, 'the 104');
    creation.destroy();
    expect(resumption).toMatchObject({ status: 104, version: String(version) });
    const id = uploadIdOf(resumption.location ?? '');
    const url = `${server.url}/files/${id}`;
    const offset = await pollUntil(
      async () => {
        const state = await ietfHead(url, version);
        return state.status === 204 && state.offset > 0 && state.offset === (await store.storedBytes(id)) ? state.offset : undefined;
      },
      'the cut creation to settle',
      15_000,
      100,
    );
    expect(offset).toBeLessThanOrEqual(2 * MiB);
    const rest = await fetchWithin(url, {
      method: 'PATCH',
      headers: {
        'Upload-Draft-Interop-Version': String(version),
        ...complete(true),
        'Upload-Offset': String(offset),
        ...(version >= 6 ? { 'Content-Type': 'application/partial-upload' } : {}),
      },
      body: content.subarray(offset),
    });
    expect(rest.status).toBe(204);
    const got = await download(url);
    expect(got.sha256).toBe(sha256(content));
  });
});
