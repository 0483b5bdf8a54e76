import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createFinishedUpload, createUpload, OFFSET_STREAM, TUS } from '../testing/http-test-helpers.js';
import { varyOrigin } from './cors.js';

/**
 * CORS_ORIGINS as a list: an origin not on it gets no Access-Control-* header at all, on
 * every method and on errors, whoever wrote the answer (@tus/server or our routes), and every
 * answer varies by Origin. Before, @tus/server answered a foreign origin with the first allowed
 * one, and without Vary.
 */

const ALLOWED = 'https://app.example.com';
const OTHER_ALLOWED = 'https://admin.example.com';
const FOREIGN = 'https://evil.example.net';

let t: TestApp;
let finished: string;
let unfinished: string;

beforeAll(async () => {
  t = await createTestApp({ CORS_ORIGINS: `${ALLOWED},${OTHER_ALLOWED}` });
  finished = (await createFinishedUpload(t.app, 'hello', { filename: 'a.txt' })).path;
  unfinished = (await createUpload(t.app, { 'Upload-Length': '10' })).path;
});

afterAll(async () => {
  await t?.cleanup();
});

/** Every request the browser could make, as [label, path, init]. */
function requests(origin: string): [string, string, RequestInit][] {
  const o = { Origin: origin };
  return [
    ['POST (created)', 'http://localhost/files', { method: 'POST', headers: { ...TUS, ...o, 'Upload-Length': '3' } }],
    ['POST (refused: no Tus-Resumable)', 'http://localhost/files', { method: 'POST', headers: { ...o, 'Upload-Length': '3' } }],
    ['HEAD', unfinished, { method: 'HEAD', headers: { ...TUS, ...o } }],
    ['HEAD (unknown upload)', '/files/0123456789abcdef0123456789abcdef', { method: 'HEAD', headers: { ...TUS, ...o } }],
    ['PATCH', unfinished, { method: 'PATCH', headers: { ...TUS, ...o, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM }, body: 'ab' }],
    ['PATCH (wrong offset)', unfinished, { method: 'PATCH', headers: { ...TUS, ...o, 'Upload-Offset': '9', 'Content-Type': OFFSET_STREAM }, body: 'x' }],
    ['OPTIONS (discovery)', '/files', { method: 'OPTIONS', headers: o }],
    [
      'OPTIONS (preflight)',
      '/files',
      { method: 'OPTIONS', headers: { ...o, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'tus-resumable, upload-length' } },
    ],
    ['GET (download)', finished, { headers: o }],
    ['GET (unfinished: 409)', unfinished, { headers: o }],
    ['GET status', `/uploads/${finished.split('/').pop()}`, { headers: o }],
    ['GET status (unknown: 404)', '/uploads/0123456789abcdef0123456789abcdef', { headers: o }],
    ['OPTIONS status (preflight)', `/uploads/${finished.split('/').pop()}`, { method: 'OPTIONS', headers: { ...o, 'Access-Control-Request-Method': 'GET' } }],
    ['GET unknown path', '/nowhere', { headers: o }],
    ['GET /healthz', '/healthz', { headers: o }],
  ];
}

const accessControl = (res: Response) => [...res.headers.keys()].filter((name) => name.startsWith('access-control-'));
const varies = (res: Response) => (res.headers.get('vary') ?? '').split(',').map((v) => v.trim().toLowerCase());

describe('CORS with a list of origins', () => {
  it('a foreign origin gets no Access-Control-* header on any answer, and every answer varies by Origin', async () => {
    for (const [label, path, init] of requests(FOREIGN)) {
      const res = await t.app.request(path, init);
      await res.arrayBuffer();
      expect(accessControl(res), label).toEqual([]);
      expect(varies(res), label).toContain('origin');
    }
  });

  it('no Origin at all (not a browser): no Access-Control-Allow-Origin either', async () => {
    for (const [label, path, init] of requests(FOREIGN)) {
      const headers = new Headers(init.headers);
      headers.delete('origin');
      const res = await t.app.request(path, { ...init, headers });
      await res.arrayBuffer();
      expect(res.headers.get('access-control-allow-origin'), label).toBeNull();
      expect(varies(res), label).toContain('origin');
    }
  });

  it('each allowed origin gets itself back, never the other, and Vary: Origin once', async () => {
    for (const origin of [ALLOWED, OTHER_ALLOWED]) {
      for (const [label, path, init] of requests(origin)) {
        if (label === 'GET unknown path' || label === 'GET /healthz') continue;
        const res = await t.app.request(path, init);
        await res.arrayBuffer();
        expect(res.headers.get('access-control-allow-origin'), `${label} from ${origin}`).toBe(origin);
        expect(varies(res).filter((v) => v === 'origin'), label).toHaveLength(1);
      }
    }
  });

  it('an allowed preflight still says what may be sent', async () => {
    const res = await t.app.request('/files', {
      method: 'OPTIONS',
      headers: { Origin: ALLOWED, 'Access-Control-Request-Method': 'PATCH', 'Access-Control-Request-Headers': 'upload-offset' },
    });
    expect(res.headers.get('access-control-allow-methods')).toContain('PATCH');
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('upload-offset');
  });
});

describe('CORS with *', () => {
  it('answers * to anyone and adds no Vary', async () => {
    const open = await createTestApp();
    try {
      const res = await open.app.request('http://localhost/files', { method: 'POST', headers: { ...TUS, Origin: FOREIGN, 'Upload-Length': '3' } });
      expect(res.status).toBe(201);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(varies(res)).not.toContain('origin');
    } finally {
      await open.cleanup();
    }
  });
});

describe('varyOrigin', () => {
  it('adds Origin to an existing Vary once, and copes with a response whose headers are immutable', async () => {
    const app = new Hono();
    app.use(varyOrigin({ origins: [ALLOWED] }));
    app.get('/vary', (c) => c.body('x', 200, { Vary: 'Accept-Encoding' }));
    app.get('/redirect', () => Response.redirect('http://localhost/elsewhere', 302));
    const vary = await app.request('/vary');
    expect(vary.headers.get('vary')).toBe('Accept-Encoding, Origin');
    const redirect = await app.request('/redirect');
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('http://localhost/elsewhere');
    expect(redirect.headers.get('vary')).toBe('Origin');
  });
});
