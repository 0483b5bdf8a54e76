import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer } from '../testing/create-test-app.js';
import { waitFor } from '../testing/http-test-helpers.js';
import { createRedisBackend, type RedisBackend } from './index.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

/**
 * Two app instances on one storage directory, sharing a Redis backend (locker, queue, status)
 * exactly as the wiring would do: a client whose PATCH to A stalls reconnects through B,
 * B's HEAD makes A let go of the upload lock, and the upload finishes and is processed once.
 */
type Server = Awaited<ReturnType<typeof startTestServer>>;

describe.skipIf(!redisUrl)('two instances sharing Redis', () => {
  const servers: Server[] = [];
  const backends: RedisBackend[] = [];
  let prefix = '';
  let storageDir = '';

  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    await Promise.all(backends.splice(0).map((b) => b.close()));
    const conns = connections();
    await deletePrefix(conns.connect(), prefix);
    await conns.closeAll();
    await fs.rm(storageDir, { recursive: true, force: true });
  });

  async function instance(): Promise<Server> {
    const logger = pino({ level: 'silent' });
    const policy = { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 500 };
    const backend = createRedisBackend({ url: redisUrl!, prefix, logger, policies: { 'process-upload': policy, 'deliver-hook': policy }, concurrency: { 'process-upload': 2, 'deliver-hook': 2 } });
    backends.push(backend);
    const server = await startTestServer({ STORAGE_DIR: storageDir }, { locker: backend.locker, state: backend.state, logger });
    servers.push(server);
    return server;
  }

  it('a stalled PATCH on A is cut when the client resumes through B; the upload is processed once', async () => {
    prefix = testPrefix('two');
    storageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-two-instances-'));
    const a = await instance();
    const b = await instance();
    const content = Buffer.alloc(256 * 1024, 'x');
    const TUS = { 'Tus-Resumable': '1.0.0' };

    const created = await fetch(`${a.running.url}/files/`, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(content.length) }, signal: AbortSignal.timeout(10_000) });
    expect(created.status).toBe(201);
    const id = new URL(created.headers.get('location')!).pathname.split('/').pop()!;

    // A PATCH to A that sends half the bytes, then stalls (a dropped Wi-Fi link, socket still open).
    const half = content.length / 2;
    const stalled = http.request(`${a.running.url}/files/${id}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': String(content.length) },
    });
    const stalledDone = new Promise<number>((resolve) => {
      stalled.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      stalled.on('error', () => resolve(0));
      stalled.on('close', () => resolve(0));
    });
    stalled.write(content.subarray(0, half));
    await waitFor(async () => (await fs.stat(path.join(storageDir, id)).catch(() => undefined))?.size === half, { timeoutMs: 5_000 });

    // The client reconnects through B: B's HEAD asks A (over Redis) to let go, and gets the offset.
    const started = performance.now();
    const head = await fetch(`${b.running.url}/files/${id}`, { method: 'HEAD', headers: TUS, signal: AbortSignal.timeout(10_000) });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('upload-offset'))).toBe(half);
    // A's PATCH gets @tus/server's lockDrainTimeout (3 s by default) to persist its bytes, then A unlocks.
    expect(performance.now() - started).toBeLessThan(6_000);
    stalled.destroy();
    await stalledDone;

    const rest = await fetch(`${b.running.url}/files/${id}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': String(half), 'Content-Type': 'application/offset+octet-stream' },
      body: content.subarray(half),
      signal: AbortSignal.timeout(10_000),
    });
    expect(rest.status).toBe(204);
    expect(Number(rest.headers.get('upload-offset'))).toBe(content.length);

    // Processed once, by whichever instance claimed it; both report the same status.
    await a.state.queue.idle();
    for (const server of [a, b]) {
      const status = (await (await fetch(`${server.running.url}/uploads/${id}`, { signal: AbortSignal.timeout(10_000) })).json()) as { state: string; processors: Record<string, { ok: boolean; result?: { sha256?: string } }> };
      expect(status.state).toBe('done');
      expect(status.processors.sha256?.result?.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    }
  });
});
