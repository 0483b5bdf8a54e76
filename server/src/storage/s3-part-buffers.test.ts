import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Env } from '../config.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { startTestServer } from '../testing/create-test-app.js';
import { OFFSET_STREAM, TUS, waitFor } from '../testing/http-test-helpers.js';
import { PARTS_ON_DISK_PER_REQUEST } from './s3-storage.js';

// How the S3 store uses the local disk for parts, on a real server and a real S3 (Ceph).
const s3 = inject('s3');
const MiB = 1024 * 1024;

const s3Env = (overrides: Env = {}): Env => ({
  ...s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', S3_PREFIX: `parts-${randomBytes(4).toString('hex')}/` }),
  // Stalled requests must stay open for the whole test.
  IDLE_TIMEOUT: '5m',
  ...overrides,
});

type Server = Awaited<ReturnType<typeof startTestServer>>;

async function create(server: Server, length: number): Promise<string> {
  const res = await fetch(`${server.running.url}/files/`, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(length) }, signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(201);
  return new URL(res.headers.get('location') ?? '').pathname;
}

describe('S3 part buffers', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('clients stalled in the middle of a part do not hold up other uploads', async () => {
    const server = await startTestServer(s3Env());
    cleanups.push(() => server.close());
    // More stalled clients than parts S3 takes at once: each has a half-filled part on disk.
    const stalled: http.ClientRequest[] = [];
    cleanups.push(() => stalled.forEach((request) => request.destroy()));
    for (let i = 0; i < 20; i += 1) {
      const uploadPath = await create(server, 10 * MiB);
      const request = http.request(`${server.running.url}${uploadPath}`, {
        method: 'PATCH',
        agent: false,
        headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': String(10 * MiB) },
      });
      request.on('error', () => undefined);
      request.write(Buffer.alloc(64 * 1024, 's'));
      stalled.push(request);
    }
    const partsDir = path.join(server.storageDir, '.s3-parts');
    // At least as many half-filled parts as S3 part uploads used to be allowed at once (4).
    await waitFor(async () => (await fs.readdir(partsDir)).length >= 4, { timeoutMs: 15_000 });

    // A client on a good link uploads past a part boundary and finishes.
    const content = randomBytes(12 * MiB);
    const uploadPath = await create(server, content.length);
    const res = await fetch(`${server.running.url}${uploadPath}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM },
      body: content,
      signal: AbortSignal.timeout(20_000),
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('upload-offset')).toBe(String(content.length));
  });

  it(`one request keeps at most ${PARTS_ON_DISK_PER_REQUEST} parts on disk, and none once it is done`, async () => {
    const server = await startTestServer(s3Env());
    cleanups.push(() => server.close());
    const partsDir = path.join(server.storageDir, '.s3-parts');
    const content = randomBytes(60 * MiB);
    const uploadPath = await create(server, content.length);

    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      // Bounded: the upload below has 30 s at most.
      for (let i = 0; sampling && i < 30_000; i += 1) {
        most = Math.max(most, (await fs.readdir(partsDir)).length);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const res = await fetch(`${server.running.url}${uploadPath}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM },
      body: content,
      signal: AbortSignal.timeout(30_000),
    });
    sampling = false;
    await sampler;
    expect(res.status).toBe(204);
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(PARTS_ON_DISK_PER_REQUEST);
    expect(await fs.readdir(partsDir)).toEqual([]);
  });
});
