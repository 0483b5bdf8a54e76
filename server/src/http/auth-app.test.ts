import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { OFFSET_STREAM, patchUpload, TUS } from '../testing/http-test-helpers.js';

const SECRET = 'app-test-secret-that-is-long-enough-0123456789';
const token = () => new SignJWT({ sub: 'user-1' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

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
    const download = await t.app.request(`${path}?access_token=${await token()}`);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('hello');
    expect((await t.app.request(`/uploads/${id}`, { headers: bearer })).status).toBe(200);
    expect((await t.app.request(`/uploads/${id}?access_token=${await token()}`)).status).toBe(200);
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
