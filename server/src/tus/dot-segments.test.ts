import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from '../testing/create-test-app.js';
import { buildRequest, OFFSET_STREAM, rawRequest, TUS, type RawResponse } from '../testing/http-test-helpers.js';

/**
 * Request paths with dot segments, sent byte for byte over a socket (every HTTP client
 * resolves them before sending). URL parsing turns `/files/%2e%2e` into `/`: no such request
 * may reach a route other than the one its raw path names. Below the tus path the answer is
 * the tus 404 with the tus headers; elsewhere the app's 404.
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server?.close();
});

const METHODS = ['HEAD', 'GET', 'PATCH', 'DELETE', 'OPTIONS', 'POST'] as const;

function send(method: string, target: string, headers: Record<string, string> = {}, body = ''): Promise<RawResponse> {
  return rawRequest(server.running.port, buildRequest(method, target, { ...TUS, 'Content-Length': String(body.length), ...headers }, body), { head: method === 'HEAD' });
}

/** What a PATCH or POST carries, so that a request reaching the tus handler would have done something. */
const bodyOf = (method: string) => (method === 'PATCH' || method === 'POST' ? 'abc' : '');
const headersOf = (method: string): Record<string, string> =>
  method === 'PATCH' ? { 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM } : method === 'POST' ? { 'Upload-Length': '3', 'Content-Type': OFFSET_STREAM } : {};

const UNDER_TUS_PATH = [
  '/files/%2e%2e',
  '/files/..',
  '/files/%2E%2e/x',
  '/files/%2e',
  '/files/.',
  '/files/./abc',
  '/files/.%2E',
  '/files/%2e.',
  '/files/abc/..',
  '/files/abc/%2e%2e/',
  '/files/%2e%2e?x=1',
  '/fil%65s/%2e%2e',
];

const ELSEWHERE = ['/%2e%2e/files', '/..', '/%2e', '/uploads/%2e%2e', '/uploads/%2e%2e/x', '/demo/%2e%2e/', '/demo/../files', '/demo/./app.js', '/healthz/..', '/x/%2E%2E/files/'];

describe.each(UNDER_TUS_PATH)('%s (below the tus path)', (target) => {
  it.each(METHODS)('%s gets the tus 404 with the tus headers', async (method) => {
    const res = await send(method, target, { Origin: 'https://app.example.com', ...headersOf(method) }, bodyOf(method));
    expect(res.status, res.body).toBe(404);
    if (method !== 'HEAD') expect(res.body).toBe('ERR_UPLOAD_NOT_FOUND: upload not found\n');
    expect(res.headers['tus-resumable']).toBe('1.0.0');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    if (method === 'HEAD') expect(res.headers['cache-control']).toBe('no-store');
  });
});

describe.each(ELSEWHERE)('%s (elsewhere)', (target) => {
  it.each(METHODS)('%s gets the app 404', async (method) => {
    const res = await send(method, target, headersOf(method), bodyOf(method));
    expect(res.status, res.body).toBe(404);
    if (method !== 'HEAD') expect(res.body).toBe('ERR_NOT_FOUND: no such resource\n');
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });
});

describe('requests that name a real upload through dot segments', () => {
  it('never reach it: HEAD, PATCH and DELETE get 404 and the upload is untouched', async () => {
    const created = await send('POST', '/files', { 'Upload-Length': '6' });
    expect(created.status).toBe(201);
    const path = new URL(created.headers.location ?? '').pathname;
    const id = path.split('/').pop() ?? '';
    for (const target of [`/files/x/../${id}`, `/files/x/%2e%2e/${id}`, `/files/./${id}`, `/demo/../files/${id}`, `/%2e%2e${path}`]) {
      expect((await send('HEAD', target)).status, target).toBe(404);
      expect((await send('PATCH', target, headersOf('PATCH'), 'abc')).status, target).toBe(404);
      expect((await send('DELETE', target)).status, target).toBe(404);
    }
    const head = await send('HEAD', path);
    expect(head.status).toBe(200);
    expect(head.headers['upload-offset']).toBe('0');
  });

  it('an absolute-form target is read the same way', async () => {
    const res = await send('HEAD', `http://127.0.0.1:${server.running.port}/files/%2e%2e`);
    expect(res.status).toBe(404);
    expect(res.headers['tus-resumable']).toBe('1.0.0');
    const page = await send('GET', `http://127.0.0.1:${server.running.port}/demo/%2e%2e/`);
    expect(page.status).toBe(404);
    expect(page.body).toBe('ERR_NOT_FOUND: no such resource\n');
  });
});

describe('paths without dot segments are served as before', () => {
  it('dots inside names and in the query are not dot segments', async () => {
    expect((await send('GET', '/demo/app.js')).status).toBe(200);
    expect((await send('GET', '/')).status).toBe(200);
    expect((await send('OPTIONS', '/files?next=/../x')).status).toBe(204);
    const invalid = await send('HEAD', '/files/...');
    expect(invalid.status).toBe(404);
    expect(invalid.headers['tus-resumable']).toBe('1.0.0');
    const created = await send('POST', '/files/', { 'Upload-Length': '1' });
    expect(created.status).toBe(201);
  });
});
