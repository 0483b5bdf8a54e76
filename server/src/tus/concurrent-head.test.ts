import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Lock } from '@tus/utils';
import { startTestServer } from '../testing/create-test-app.js';
import { createMemoryLocker } from '../uploads/memory-locker.js';
import type { UploadLocker } from '../uploads/upload-locker.js';
import { buildRequest, OFFSET_STREAM, openRawConnection, rawRequest, TUS, waitFor } from '../testing/http-test-helpers.js';

/**
 * HEAD needs no exclusive lock: many HEADs on one upload answer together, and a PATCH that
 * holds the upload's lock is asked to let go first, so every HEAD counts its bytes.
 */
type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

const HEADS = 64;

/** The real in-process locker, counting who takes locks and who only waits to read. */
function countingLocker() {
  const inner = createMemoryLocker();
  const counts = { locks: 0, reads: 0 };
  const locker: UploadLocker = {
    newLock(id: string): Lock {
      const lock = inner.newLock(id);
      return {
        lock: (signal, requestRelease) => {
          counts.locks += 1;
          return lock.lock(signal, requestRelease);
        },
        unlock: () => lock.unlock(),
      };
    },
    waitUntilFree(id, signal) {
      counts.reads += 1;
      return inner.waitUntilFree(id, signal);
    },
    close: () => inner.close(),
  };
  return { locker, counts };
}

describe('concurrent HEADs on one upload', () => {
  it('all answer while a PATCH is in flight, after the PATCH was asked to let go', async () => {
    const { locker, counts } = countingLocker();
    const server = await startTestServer({}, { locker });
    servers.push(server);
    const { port } = server.running;
    const created = await rawRequest(port, buildRequest('POST', '/files', { ...TUS, 'Upload-Length': String(1024 * 1024), 'Content-Length': '0' }));
    expect(created.status).toBe(201);
    const uploadPath = new URL(created.headers.location!).pathname;
    const id = uploadPath.split('/').pop()!;

    // A PATCH announces 1 MiB, sends 100 KiB, then goes quiet while holding the lock.
    const sent = Buffer.alloc(100 * 1024, 0x5a);
    const patch = openRawConnection(port, { timeoutMs: 15_000 });
    patch.socket.write(buildRequest('PATCH', uploadPath, { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': String(1024 * 1024) }, sent));
    const file = path.join(server.storageDir, id);
    await waitFor(async () => (await fs.stat(file).catch(() => undefined))?.size === sent.length, { timeoutMs: 5_000 });

    const locksBefore = counts.locks;
    const heads = await Promise.all(
      Array.from({ length: HEADS }, () => rawRequest(port, buildRequest('HEAD', uploadPath, TUS), { head: true, timeoutMs: 15_000 })),
    );
    for (const head of heads) {
      expect(head.status).toBe(200);
      expect(head.headers['upload-offset']).toBe(String(sent.length));
      expect(head.headers['cache-control']).toBe('no-store');
    }
    // No HEAD queued for the exclusive lock: each only waited for the PATCH to let go.
    expect(counts.locks - locksBefore).toBe(0);
    expect(counts.reads).toBe(HEADS);
    // The PATCH was asked to let go: it ended with what it had stored, and the upload resumes there.
    const patched = await patch.response;
    expect(patched.status).toBe(204);
    expect(patched.headers['upload-offset']).toBe(String(sent.length));
  });
});
