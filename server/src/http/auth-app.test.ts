import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { OFFSET_STREAM, patchUpload, TUS } from '../testing/http-test-helpers.js';

const SECRET = 'app-test-secret-that-is-long-enough-0123456789';
const token = (sub = 'user-1') => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

/** With AUTH_JWT_SECRET, everything about uploads needs a token; discovery, preflights and health do not. */
describe('the app with AUTH_JWT_SECRET', () => {
  let t: TestApp;
  let bearer: Record<string, string>;

  beforeAll(async () => {
    t = await createTestApp({ AUTH_JWT_SECRET: SECRET, CORS_ORIGINS: 'https://app.example.com' });
    bearer = { Authorization: `Bearer ${await token()}` };
  });
  afterAll(() => t?.cleanup());

  it('refuses to create an upload without a token, in words a browser can read', async () => {
    const res = await t.app.request('/files/', { method: 'POST', headers: { ...TUS, 'Upload-Length': '5', Origin: 'https://app.example.com' } });
    expect(res.status).toBe(401);
    expect(await res.text()).toBe('ERR_UNAUTHORIZED: this server needs a token: send Authorization: Bearer <token>\n');
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="uploads"');
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(res.headers.get('tus-resumable')).toBe('1.0.0');
  });

  it('keeps OPTIONS open (discovery and CORS preflight) and lets the preflight allow Authorization', async () => {
    const res = await t.app.request('/files/', {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, tus-resumable, upload-length' },
    });
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect((await t.app.request('/healthz')).status).toBe(200);
  });

  it('with a token: the whole upload, its download, its status; without: 401 at every step', async () => {
    const created = await t.app.request('/files/', { method: 'POST', headers: { ...TUS, ...bearer, 'Upload-Length': '5' } });
    expect(created.status).toBe(201);
    const path = new URL(created.headers.get('location') ?? '', 'http://localhost').pathname;
    const id = path.split('/').pop() ?? '';

    const steps: [string, RequestInit][] = [
      [path, { method: 'HEAD', headers: TUS }],
      [path, { method: 'PATCH', headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM }, body: 'hello' }],
      [path, { method: 'GET' }],
      [`/uploads/${id}`, { method: 'GET' }],
      [path, { method: 'DELETE', headers: TUS }],
    ];
    for (const [url, init] of steps) {
      const res = await t.app.request(url, init);
      expect(res.status, `${init.method} ${url}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="uploads"');
    }

    const patched = await patchUpload(t.app, path, 0, 'hello', bearer);
    expect(patched.status).toBe(204);
    expect((await t.app.request(path, { method: 'HEAD', headers: { ...TUS, ...bearer } })).status).toBe(200);
    // A token in the URL is no credential; the status resource hands out a signed link instead.
    expect((await t.app.request(`${path}?access_token=${await token()}`)).status).toBe(401);
    const status = await t.app.request(`/uploads/${id}`, { headers: bearer });
    expect(status.status).toBe(200);
    const { downloadUrl, eventsUrl } = (await status.json()) as { downloadUrl: string; eventsUrl: string };
    expect(downloadUrl).toMatch(new RegExp(`^${path}\\?expires=\\d+&signature=[\\w-]+$`));
    const download = await t.app.request(downloadUrl);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('hello');
    expect(eventsUrl).toMatch(new RegExp(`^/uploads/${id}/events\\?expires=`));
    // The link grants that download only: not a DELETE, not another upload's bytes.
    expect((await t.app.request(downloadUrl, { method: 'DELETE', headers: TUS })).status).toBe(401);
    const otherId = `${id.slice(0, -1)}${id.endsWith('0') ? '1' : '0'}`;
    expect((await t.app.request(downloadUrl.replace(id, otherId))).status).toBe(401);
    expect((await t.app.request(path, { method: 'DELETE', headers: { ...TUS, ...bearer } })).status).toBe(204);
  });

  it('answers a bad token with why, and a status preflight without asking for one', async () => {
    const res = await t.app.request('/files/', { method: 'POST', headers: { ...TUS, Authorization: 'Bearer nonsense', 'Upload-Length': '5' } });
    expect(res.status).toBe(401);
    expect(await res.text()).toBe('ERR_UNAUTHORIZED: the token is not a valid JWT\n');
    const preflight = await t.app.request('/uploads/some-id', { method: 'OPTIONS', headers: { Origin: 'https://app.example.com', 'Access-Control-Request-Headers': 'authorization' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toBe('Authorization');
  });
});

/**
 * An upload belongs to whoever created it: another subject's token gets 404 on every route
 * that names it, exactly as for an id that does not exist; an admin sees all.
 */
describe('ownership of uploads', () => {
  let t: TestApp;
  const as = async (sub: string, scope?: string) => ({
    Authorization: `Bearer ${await new SignJWT({ sub, ...(scope ? { scope } : {}) }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET))}`,
  });

  beforeAll(async () => {
    t = await createTestApp({ AUTH_JWT_SECRET: SECRET, AUTH_ADMIN_SCOPE: 'uploads:admin' });
    await t.startBackground();
  });
  afterAll(() => t?.cleanup());

  async function create(headers: Record<string, string>, extra: Record<string, string> = {}): Promise<string> {
    const created = await t.app.request('/files/', { method: 'POST', headers: { ...TUS, ...headers, 'Upload-Length': '5', ...extra } });
    expect(created.status).toBe(201);
    return new URL(created.headers.get('location') ?? '', 'http://localhost').pathname;
  }

  it("answers 404 to another subject on HEAD, PATCH, GET, DELETE, the status resource and its events; the owner's upload is untouched", async () => {
    const alice = await as('alice');
    const bob = await as('bob');
    const path = await create(alice);
    const id = path.split('/').pop() ?? '';
    expect((await patchUpload(t.app, path, 0, 'hel', alice)).status).toBe(204);

    const attempts: [string, RequestInit][] = [
      [path, { method: 'HEAD', headers: { ...TUS, ...bob } }],
      [path, { method: 'PATCH', headers: { ...TUS, ...bob, 'Upload-Offset': '3', 'Content-Type': OFFSET_STREAM, 'Content-Length': '2' }, body: 'lo' }],
      [path, { method: 'GET', headers: bob }],
      [path, { method: 'DELETE', headers: { ...TUS, ...bob } }],
      [`/uploads/${id}`, { method: 'GET', headers: bob }],
      [`/uploads/${id}/events`, { method: 'GET', headers: bob }],
    ];
    const unknown = `/files/${'0'.repeat(32)}`;
    for (const [url, init] of attempts) {
      const res = await t.app.request(url, init);
      expect(res.status, `${init.method} ${url}`).toBe(404);
      // Exactly what an id that does not exist gets.
      const same = await t.app.request(url.replace(id, '0'.repeat(32)).replace(path, unknown), init);
      expect(await res.text(), `${init.method} ${url}`).toBe(await same.text());
    }
    // A final upload naming another subject's partial: the partial does not exist for bob.
    const partial = await create(alice, { 'Upload-Concat': 'partial' });
    const final = await t.app.request('/files/', { method: 'POST', headers: { ...TUS, ...bob, 'Upload-Concat': `final;${partial}` } });
    expect(final.status).toBe(400);
    expect(await final.text()).toMatch(/does not exist/);

    // Alice's upload is as she left it, and hers to finish.
    const head = await t.app.request(path, { method: 'HEAD', headers: { ...TUS, ...alice } });
    expect(head.headers.get('upload-offset')).toBe('3');
    expect((await patchUpload(t.app, path, 3, 'lo', alice)).status).toBe(204);
    expect(await (await t.app.request(path, { headers: alice })).text()).toBe('hello');
  });

  it('lets an admin (AUTH_ADMIN_SCOPE) see and remove anyone\'s upload', async () => {
    const path = await create(await as('carol'));
    const admin = await as('ops', 'uploads:admin');
    expect((await t.app.request(path, { method: 'HEAD', headers: { ...TUS, ...admin } })).status).toBe(200);
    expect((await t.app.request(path, { method: 'DELETE', headers: { ...TUS, ...admin } })).status).toBe(204);
  });

  it('never lets a client set the owner through metadata', async () => {
    // Keys may not contain spaces, so the stored owner key cannot be sent; an "owner" key is plain metadata.
    const path = await create(await as('dave'), { 'Upload-Metadata': `owner ${Buffer.from('jwt:erin').toString('base64')}` });
    expect((await t.app.request(path, { method: 'HEAD', headers: { ...TUS, ...(await as('erin')) } })).status).toBe(404);
  });
});
