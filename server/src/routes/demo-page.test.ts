import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { DEMO_CSP, DEMO_FILES, demoPageRoutes } from './demo-page.js';

const repo = (file: string) => fileURLToPath(new URL(`../../../${file}`, import.meta.url));

let t: TestApp | undefined;

afterEach(async () => {
  await t?.cleanup();
  t = undefined;
});

async function app(env: Record<string, string> = {}) {
  t = await createTestApp(env);
  return t.app;
}

function expectPageHeaders(res: Response, type: string) {
  expect(res.headers.get('content-type')).toBe(type);
  expect(res.headers.get('cache-control')).toBe('no-cache');
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  expect(res.headers.get('content-security-policy')).toBe(DEMO_CSP);
  expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  expect(res.headers.get('etag')).toMatch(/^"[\w-]{27}"$/);
}

describe('GET / (the browser demo)', () => {
  it('serves the page with the tus endpoint written in, and strict headers', async () => {
    const res = await (await app()).request('/');
    expect(res.status).toBe(200);
    expectPageHeaders(res, 'text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain('<meta name="tus-endpoint" content="/files/">');
    expect(html).not.toContain('__TUS_ENDPOINT__');
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(html));
  });

  it('follows TUS_PATH', async () => {
    const html = await (await (await app({ TUS_PATH: '/media/tus/' })).request('/')).text();
    expect(html).toContain('<meta name="tus-endpoint" content="/media/tus/">');
  });

  it('allows only this origin, with no inline code', () => {
    const directives = Object.fromEntries(DEMO_CSP.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1).join(' ')]));
    expect(directives).toMatchObject({ 'default-src': "'none'", 'script-src': "'self'", 'style-src': "'self'", 'connect-src': "'self'", 'frame-ancestors': "'none'" });
    expect(DEMO_CSP).not.toMatch(/unsafe|\*|https?:/);
  });

  it('answers HEAD like GET, without a body', async () => {
    const res = await (await app()).request('/', { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await res.text()).toBe('');
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const a = await app();
    const etag = (await a.request('/demo/app.js')).headers.get('etag') ?? '';
    const again = await a.request('/demo/app.js', { headers: { 'If-None-Match': `W/${etag}, "other"` } });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    expect(await again.text()).toBe('');
    expect((await a.request('/demo/app.js', { headers: { 'If-None-Match': '"other"' } })).status).toBe(200);
  });
});

describe('GET /demo/<asset>', () => {
  it.each([
    ['app.js', 'text/javascript; charset=utf-8', 'client-demo/public/app.js'],
    ['format.js', 'text/javascript; charset=utf-8', 'client-demo/public/format.js'],
    ['styles.css', 'text/css; charset=utf-8', 'client-demo/public/styles.css'],
    ['tus.min.js', 'text/javascript; charset=utf-8', 'node_modules/tus-js-client/dist/tus.min.js'],
  ])('serves %s as %s', async (name, type, source) => {
    const res = await (await app()).request(`/demo/${name}`);
    expect(res.status).toBe(200);
    expectPageHeaders(res, type);
    expect(Buffer.from(await res.arrayBuffer()).equals(fs.readFileSync(repo(source)))).toBe(true);
  });

  it.each([
    '/demo/',
    '/demo/index.html',
    '/demo/../package.json',
    '/demo/..%2Fpackage.json',
    '/demo/%2e%2e/%2e%2e/package.json',
    '/demo/app.js/',
    '/demo/APP.JS',
    '/demo/tus.min.js.map',
    '/demo/app.js%00.css',
    '/client-demo/public/app.js',
    '/index.html',
  ])('has nothing else: %s is 404', async (url) => {
    const res = await (await app()).request(url);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('ERR_NOT_FOUND: no such resource\n');
  });

  it('takes GET and HEAD only', async () => {
    const a = await app();
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) expect((await a.request('/demo/app.js', { method })).status, method).toBe(404);
  });
});

describe('demoPageRoutes', () => {
  it('lists the files it serves, all present', () => {
    expect([...DEMO_FILES].sort()).toEqual(['client-demo/public/app.js', 'client-demo/public/format.js', 'client-demo/public/index.html', 'client-demo/public/styles.css']);
    for (const file of DEMO_FILES) expect(fs.existsSync(repo(file)), file).toBe(true);
  });

  it('fails at once, naming the file, when the page is missing', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-page-'));
    try {
      expect(() => demoPageRoutes({ tusPath: '/files', publicDir: empty })).toThrow(`the browser demo cannot read ${empty}/index.html`);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('escapes the endpoint it writes into the page', async () => {
    const routes = demoPageRoutes({ tusPath: '/a"<b>' });
    expect(await (await routes.request('/')).text()).toContain('content="/a&quot;&lt;b&gt;/"');
  });
});
