import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisBackend, type RedisBackend } from '../redis/index.js';
import { connections, deletePrefix, redisUrl, testPrefix } from '../redis/test-redis.js';
import { createTestApp, startTestServer, type TestApp } from '../testing/create-test-app.js';
import { advanceClock, idFromLocation, waitFor } from '../testing/http-test-helpers.js';

/**
 * What IETF uploads share with tus uploads because both go through the upload core:
 * authentication and ownership, pre-create's veto, expiry, and two instances on Redis (the
 * lock and its release requests across processes, processing once).
 */

const V8 = { 'Upload-Draft-Interop-Version': '8' };
const SECRET = 'ietf-test-secret-that-is-long-enough-0123456789';
const token = (sub: string) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

describe('IETF uploads under the core rules', () => {
  let t: TestApp;
  let refused = 0;
  beforeAll(async () => {
    t = await createTestApp(
      { AUTH_JWT_SECRET: SECRET, UPLOAD_EXPIRY: '1h' },
      {
        hooks: {
          'pre-create': (event) => {
            if (event.upload.metadata.filename === 'forbidden.exe') {
              refused += 1;
              return { reject: { status: 403, message: 'no executables' } };
            }
            return undefined;
          },
        },
      },
    );
  });
  afterAll(() => t?.cleanup());

  const request = (url: string, init: RequestInit & { headers?: Record<string, string> }) => t.app.request(`http://localhost${url}`, { ...init, headers: { Host: 'localhost', ...init.headers } });

  it('needs a token; another subject finds nothing; OPTIONS stays open', async () => {
    const anonymous = await request('/files', { method: 'POST', headers: { ...V8, 'Upload-Complete': '?0' } });
    expect(anonymous.status).toBe(401);
    expect((await request('/files', { method: 'OPTIONS', headers: V8 })).status).toBe(200);

    const alice = { Authorization: `Bearer ${await token('alice')}` };
    const bob = { Authorization: `Bearer ${await token('bob')}` };
    const created = await request('/files', { method: 'POST', headers: { ...V8, ...alice, 'Upload-Complete': '?0', 'Upload-Length': '4' } });
    expect(created.status).toBe(201);
    const id = idFromLocation(created.headers.get('location'));
    const append = (who: Record<string, string>) =>
      request(`/files/${id}`, { method: 'PATCH', headers: { ...V8, ...who, 'Upload-Complete': '?1', 'Upload-Offset': '0', 'Content-Type': 'application/partial-upload' }, body: 'abcd' });
    expect((await request(`/files/${id}`, { method: 'HEAD', headers: { ...V8, ...bob } })).status).toBe(404);
    expect((await append(bob)).status).toBe(404);
    expect((await request(`/files/${id}`, { method: 'DELETE', headers: { ...V8, ...bob } })).status).toBe(404);
    expect((await append(alice)).status).toBe(204);
    expect((await request(`/files/${id}`, { method: 'HEAD', headers: { ...V8, ...alice } })).headers.get('upload-complete')).toBe('?1');
  });

  it('lets pre-create refuse: the status it chose, and no upload', async () => {
    const alice = { Authorization: `Bearer ${await token('alice')}` };
    const before = (await fs.readdir(t.storageDir)).length;
    const res = await request('/files', { method: 'POST', headers: { ...V8, ...alice, 'Upload-Complete': '?1', 'Content-Disposition': 'inline; filename="forbidden.exe"' }, body: 'MZ' });
    expect(res.status).toBe(403);
    expect(res.headers.get('location')).toBeNull();
    expect(refused).toBe(1);
    expect((await fs.readdir(t.storageDir)).length).toBe(before);
  });

  it('expires unfinished uploads: 410 once UPLOAD_EXPIRY has passed', async () => {
    const alice = { Authorization: `Bearer ${await token('alice')}` };
    const created = await request('/files', { method: 'POST', headers: { ...V8, ...alice, 'Upload-Complete': '?0', 'Upload-Length': '10' } });
    const id = idFromLocation(created.headers.get('location'));
    advanceClock(2 * 60 * 60_000);
    // A token of the new hour: the first one expired with the upload.
    const later = { Authorization: `Bearer ${await token('alice')}` };
    expect((await request(`/files/${id}`, { method: 'HEAD', headers: { ...V8, ...later } })).status).toBe(410);
  });
});

describe.skipIf(!redisUrl)('IETF uploads on two instances sharing Redis', () => {
  type Server = Awaited<ReturnType<typeof startTestServer>>;
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

  async function instance(posts: string[]): Promise<Server> {
    const logger = pino({ level: 'silent' });
    const policy = { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 500 };
    const backend = createRedisBackend({ url: redisUrl!, prefix, logger, policies: { 'process-upload': policy, 'deliver-hook': policy }, concurrency: { 'process-upload': 2, 'deliver-hook': 2 } });
    backends.push(backend);
    const server = await startTestServer({ STORAGE_DIR: storageDir }, { locker: backend.locker, state: backend.state, logger, hooks: { 'post-finish': (event) => void posts.push(event.upload.id) } });
    servers.push(server);
    return server;
  }

  it('a creation stalled on A lets go when the client asks B for the offset; B completes it; processed once', async () => {
    prefix = testPrefix('ietf-two');
    storageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ietf-two-instances-'));
    const posts: string[] = [];
    const a = await instance(posts);
    const b = await instance(posts);
    const content = Buffer.alloc(256 * 1024, 'y');
    const half = content.length / 2;

    const creation = http.request(`${a.running.url}/files`, { method: 'POST', headers: { ...V8, 'Upload-Complete': '?1', 'Content-Length': String(content.length) } });
    const location = new Promise<string>((resolve) => {
      creation.on('information', (info) => resolve(String(info.headers.location)));
    });
    creation.on('error', () => undefined);
    creation.on('response', (res) => res.resume());
    creation.write(content.subarray(0, half));
    const url = await location;
    const id = idFromLocation(url);
    await waitFor(async () => (await fs.stat(path.join(storageDir, id)).catch(() => undefined))?.size === half, { timeoutMs: 5_000 });

    const head = await fetch(`${b.running.url}/files/${id}`, { method: 'HEAD', headers: V8, signal: AbortSignal.timeout(10_000) });
    expect(head.status).toBe(204);
    expect(head.headers.get('upload-offset')).toBe(String(half));
    creation.destroy();

    const rest = await fetch(`${b.running.url}/files/${id}`, {
      method: 'PATCH',
      headers: { ...V8, 'Upload-Complete': '?1', 'Upload-Offset': String(half), 'Content-Type': 'application/partial-upload' },
      body: content.subarray(half),
      signal: AbortSignal.timeout(10_000),
    });
    expect(rest.status).toBe(204);
    expect(rest.headers.get('upload-complete')).toBe('?1');
    await waitFor(async () => ((await (await fetch(`${a.running.url}/uploads/${id}`)).json()) as { state: string }).state === 'done', { timeoutMs: 15_000 });
    await waitFor(() => posts.length >= 1, { timeoutMs: 10_000 });
    expect(posts.filter((one) => one === id)).toHaveLength(1);
  });
});
