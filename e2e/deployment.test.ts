import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ByteSource, MiB, sha256 } from './support/files.js';
import { Scope, type ServerProcess } from './support/server-process.js';
import { download, fetchWithin, startClientUpload, TUS } from './support/tus.js';

const APP_ORIGIN = 'https://app.example.com';

/** Settings a deployment changes: the tus path, a reverse proxy in front, CORS origins; and the health probes. */
describe('deployment settings', () => {
  const scope = new Scope();
  let proxied: ServerProcess;
  let plain: ServerProcess;

  beforeAll(async () => {
    [proxied, plain] = await Promise.all([
      scope.server({ env: { TUS_PATH: '/api/uploads/', TRUST_PROXY: 'true', CORS_ORIGINS: APP_ORIGIN } }),
      scope.server(),
    ]);
  });
  afterAll(() => scope.dispose());

  it('serves uploads under TUS_PATH, and nothing under the default path', async () => {
    const content = new ByteSource('tus-path').bytes(0, 2 * MiB);
    const run = startClientUpload(content, { endpoint: `${proxied.url}/api/uploads/`, chunkSize: MiB });
    const url = await run.done;
    expect(new URL(url).pathname).toMatch(/^\/api\/uploads\/[A-Za-z0-9_-]+$/);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(sha256(content));

    const wrongPath = await fetchWithin(`${proxied.url}/files/`, { method: 'POST', headers: { ...TUS, 'Upload-Length': '1' } });
    await wrongPath.arrayBuffer();
    expect(wrongPath.status).toBe(404);
  });

  it('builds upload URLs from X-Forwarded-Host/-Proto only with TRUST_PROXY', async () => {
    const forwarded = { ...TUS, 'Upload-Length': '1', 'X-Forwarded-Host': 'uploads.example.com', 'X-Forwarded-Proto': 'https' };

    const trusted = await fetchWithin(`${proxied.url}/api/uploads/`, { method: 'POST', headers: forwarded });
    await trusted.arrayBuffer();
    expect(trusted.status).toBe(201);
    expect(trusted.headers.get('location')).toMatch(/^https:\/\/uploads\.example\.com\/api\/uploads\/[A-Za-z0-9_-]+$/);

    const untrusted = await fetchWithin(plain.endpoint, { method: 'POST', headers: forwarded });
    await untrusted.arrayBuffer();
    expect(untrusted.status).toBe(201);
    expect(untrusted.headers.get('location')?.startsWith(`${plain.url}/files/`)).toBe(true);
  });

  it('answers CORS for the configured origin only', async () => {
    const allowed = await fetchWithin(`${proxied.url}/api/uploads/`, { method: 'POST', headers: { ...TUS, 'Upload-Length': '1', Origin: APP_ORIGIN } });
    await allowed.arrayBuffer();
    expect(allowed.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(allowed.headers.get('access-control-expose-headers')).toContain('Location');
    expect(allowed.headers.get('access-control-expose-headers')).toContain('Upload-Offset');

    const preflight = await fetchWithin(`${proxied.url}/api/uploads/`, {
      method: 'OPTIONS',
      headers: { Origin: APP_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'tus-resumable, upload-length' },
    });
    await preflight.arrayBuffer();
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('PATCH');

    const other = await fetchWithin(`${proxied.url}/api/uploads/`, { method: 'POST', headers: { ...TUS, 'Upload-Length': '1', Origin: 'https://evil.example' } });
    await other.arrayBuffer();
    expect(other.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).not.toBe('*');
  });

  it('answers the health probes', async () => {
    const health = await fetchWithin(`${plain.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetchWithin(`${plain.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
  });
});
