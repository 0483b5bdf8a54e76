import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv } from './services/s3-env.js';
import { ByteSource, MiB, sha256 } from './support/files.js';
import { Scope, type ServerProcess } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS } from './support/stores.js';
import { fetchWithin, OCTET, startClientUpload, TUS } from './support/tus.js';

const SECRET = 'ownership-e2e-secret-that-is-long-enough-000';
const tokenFor = (sub: string) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

/**
 * Another subject's token on an upload gets exactly what an unknown id gets, on every route,
 * whichever instance it reaches.
 */
async function expectInvisible(baseUrl: string, id: string, stranger: string): Promise<void> {
  const auth = { Authorization: `Bearer ${stranger}` };
  const unknown = '0'.repeat(32);
  const routes: [string, RequestInit][] = [
    [`/files/${id}`, { method: 'HEAD', headers: { ...TUS, ...auth } }],
    [`/files/${id}`, { method: 'PATCH', headers: { ...TUS, ...auth, 'Upload-Offset': '0', 'Content-Type': OCTET }, body: 'x' }],
    [`/files/${id}`, { method: 'GET', headers: auth }],
    [`/files/${id}`, { method: 'DELETE', headers: { ...TUS, ...auth } }],
    [`/uploads/${id}`, { method: 'GET', headers: auth }],
    [`/uploads/${id}/events`, { method: 'GET', headers: auth }],
  ];
  for (const [path, init] of routes) {
    const res = await fetchWithin(`${baseUrl}${path}`, init);
    const body = await res.text();
    const other = await fetchWithin(`${baseUrl}${path.replace(id, unknown)}`, init);
    expect({ route: `${init.method} ${path}`, status: res.status, body }).toEqual({ route: `${init.method} ${path}`, status: other.status, body: await other.text() });
    expect(res.status, `${init.method} ${path}`).toBe(404);
  }
}

describe.each(STORE_KINDS)('[%s] an upload belongs to whoever created it', (kind) => {
  const scope = new Scope();
  let server: ServerProcess;

  beforeAll(async () => {
    const store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ AUTH_JWT_SECRET: SECRET }));
  });
  afterAll(() => scope.dispose());

  it("another subject's token gets 404 on every route; the owner's upload finishes byte-identical", async () => {
    const alice = await tokenFor('alice');
    const content = new ByteSource('ownership').bytes(0, 2 * MiB);
    const run = startClientUpload(content, { endpoint: server.endpoint, chunkSize: MiB, headers: { Authorization: `Bearer ${alice}` } });
    const url = await run.done;
    const id = uploadIdOf(url);
    await expectInvisible(server.url, id, await tokenFor('bob'));

    const got = await fetchWithin(url, { headers: { Authorization: `Bearer ${alice}` } });
    expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(sha256(content));
    // The hook-facing subject is recorded, the token is not: nothing of it in the server's log.
    expect(server.stdout()).not.toContain(alice);
  });
});

const s3 = inject('s3');
const redisUrl = inject('redisUrl');

describe.skipIf(!redisUrl)('ownership across instances sharing S3 and Redis', () => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  it('an upload created through one instance is invisible to another subject through the other', async () => {
    const tag = randomBytes(4).toString('hex');
    const env = s3ServerEnv(s3, { S3_PREFIX: `ownership-${tag}/`, REDIS_URL: redisUrl ?? '', REDIS_PREFIX: `e2e-own-${tag}:`, AUTH_JWT_SECRET: SECRET });
    const [a, b] = await Promise.all([scope.server({ env }), scope.server({ env })]);
    const alice = await tokenFor('alice');
    const created = await fetchWithin(`${a.url}/files`, {
      method: 'POST',
      headers: { ...TUS, Authorization: `Bearer ${alice}`, 'Upload-Length': '5', 'Content-Type': OCTET },
      body: 'hello',
    });
    expect(created.status).toBe(201);
    const id = uploadIdOf(created.headers.get('location') ?? '');
    await expectInvisible(b.url, id, await tokenFor('mallory'));
    const own = await fetchWithin(`${b.url}/files/${id}`, { headers: { Authorization: `Bearer ${alice}` } });
    expect(await own.text()).toBe('hello');
  });
});
