import { parse } from 'content-disposition';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createFinishedUpload, createUpload, patchUpload } from '../testing/http-test-helpers.js';

const CONTENT = '0123456789abcdefghijklmnopqrstuvwxyz'; // 36 bytes
const TUSD_BODY = /^ERR_[A-Z_]+: [^\n]+\n$/;

let t: TestApp;
const apps: TestApp[] = [];

beforeEach(async () => {
  t = await createTestApp();
  apps.push(t);
});

afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

function get(url: string, headers: Record<string, string> = {}, app = t): Promise<Response> {
  return Promise.resolve(app.app.request(url, { headers }));
}

describe('GET a finished upload', () => {
  it('sends the whole file with length, validator and range support', async () => {
    const { path, id } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('36');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toBe(`"${id}-36"`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain('sandbox');
    expect(res.headers.get('content-range')).toBeNull();
    expect(await res.text()).toBe(CONTENT);
  });

  it('sends binary content byte for byte', async () => {
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 31 + 7) % 256);
    const { path } = await createFinishedUpload(t.app, bytes);
    const res = await get(path);
    expect(res.headers.get('content-length')).toBe('70000');
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
  });

  it('does not need Tus-Resumable', async () => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path);
    expect(res.status).toBe(200);
  });
});

describe('Range requests', () => {
  it.each([
    ['bytes=0-9', 0, 9],
    ['bytes=10-19', 10, 19],
    ['bytes=30-', 30, 35],
    ['bytes=-6', 30, 35],
    ['bytes=35-35', 35, 35],
    ['bytes=30-1000', 30, 35],
    ['bytes=-1000', 0, 35],
    ['bytes=-36', 0, 35],
    ['bytes=-1000,0-3', 0, 35],
    ['bytes=0-4,5-9', 0, 9],
  ])('%s → 206 bytes %d-%d', async (range, start, end) => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path, { Range: range });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/36`);
    expect(res.headers.get('content-length')).toBe(String(end - start + 1));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(await res.text()).toBe(CONTENT.slice(start, end + 1));
  });

  it.each(['bytes=36-', 'bytes=100-200', 'bytes=40-50', 'bytes=-0'])('%s is 416 with Content-Range bytes */36', async (range) => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path, { Range: range });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */36');
    const body = await res.text();
    expect(body).toMatch(TUSD_BODY);
    expect(body.startsWith('ERR_RANGE_NOT_SATISFIABLE: ')).toBe(true);
  });

  it('several disjoint ranges get the whole file with 200', async () => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path, { Range: 'bytes=0-1,10-11,20-21' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('36');
    expect(res.headers.get('content-range')).toBeNull();
    expect(await res.text()).toBe(CONTENT);
  });

  it.each(['bytes=abc', 'items=0-5', 'garbage', 'bytes=1-x'])('a malformed Range %j is ignored: 200 whole file', async (range) => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path, { Range: range });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(CONTENT);
  });

  it('honours If-Range with the current ETag and ignores Range with a stale one', async () => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const etag = (await get(path)).headers.get('etag')!;
    const fresh = await get(path, { Range: 'bytes=0-3', 'If-Range': etag });
    expect(fresh.status).toBe(206);
    expect(await fresh.text()).toBe('0123');
    const stale = await get(path, { Range: 'bytes=0-3', 'If-Range': '"something-else"' });
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe(CONTENT);
  });

  it('a Range on an empty file is ignored', async () => {
    const { path } = await createFinishedUpload(t.app, '');
    const res = await get(path, { Range: 'bytes=0-10' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('0');
  });
});

describe('Content-Type and Content-Disposition', () => {
  it('shows an image/png inline with its type and name', async () => {
    const { path } = await createFinishedUpload(t.app, CONTENT, { filename: 'photo.png', filetype: 'image/png' });
    const res = await get(path);
    expect(res.headers.get('content-type')).toBe('image/png');
    const disposition = parse(res.headers.get('content-disposition')!);
    expect(disposition.type).toBe('inline');
    expect(disposition.parameters.filename).toBe('photo.png');
  });

  it.each(['text/html', 'image/svg+xml', 'application/pdf', 'application/javascript'])('sends %s as an application/octet-stream attachment', async (filetype) => {
    const { path } = await createFinishedUpload(t.app, '<script>alert(1)</script>', { filename: 'file', filetype });
    const res = await get(path);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(parse(res.headers.get('content-disposition')!).type).toBe('attachment');
  });

  it('without metadata: octet-stream attachment with no name', async () => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-disposition')).toBe('attachment');
  });

  it('sanitizes path separators, control characters and quotes, and encodes non-ASCII', async () => {
    const cases: [string, string][] = [
      ['../../etc/passwd', '_.._etc_passwd'],
      ['C:\\Windows\\evil.exe', 'C:_Windows_evil.exe'],
      ['bad\r\nX-Injected: 1.txt', 'badX-Injected: 1.txt'],
      ['nul\u0000byte.txt', 'nulbyte.txt'],
      ['say "hi".txt', 'say "hi".txt'],
      ['naïve café.txt', 'naïve café.txt'],
      ['日本語.txt', '日本語.txt'],
    ];
    for (const [filename, saved] of cases) {
      const { path } = await createFinishedUpload(t.app, 'x', { filename });
      const res = await get(path);
      const header = res.headers.get('content-disposition')!;
      expect(header).toMatch(/^[\u0020-\u007e]+$/);
      expect(res.headers.get('x-injected')).toBeNull();
      expect(parse(header).parameters.filename).toBe(saved);
      if (/[^\u0020-\u007e]/.test(saved)) expect(header).toContain("filename*=UTF-8''");
    }
  });
});

describe('what is not served', () => {
  it('an unfinished upload is 409, with how much arrived', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Length': '10' });
    await patchUpload(t.app, path, 0, 'abc');
    const res = await get(path);
    expect(res.status).toBe(409);
    const body = await res.text();
    expect(body).toMatch(TUSD_BODY);
    expect(body).toBe('ERR_UPLOAD_NOT_FINISHED: the upload is not finished (3 of 10 bytes received)\n');
  });

  it('an upload with a deferred length is 409', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Defer-Length': '1' });
    expect((await get(path)).status).toBe(409);
  });

  it('an unknown upload is 404', async () => {
    const res = await get('/files/0123456789abcdef0123456789abcdef');
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('ERR_UPLOAD_NOT_FOUND: upload not found\n');
  });

  it('an id that cannot exist is 404 without touching the disk', async () => {
    for (const path of ['/files/..%2f..%2fetc%2fpasswd', '/files/a.json', `/files/${'a'.repeat(500)}`]) {
      const res = await get(path);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(TUSD_BODY);
    }
    // `/files/%2e%2e` is a dot segment: by URL rules it is `/` (the browser demo), never an upload.
    expect(new Request('http://localhost/files/%2e%2e').url).toBe('http://localhost/');
    expect((await get('/files/%2e%2e')).headers.get('content-type')).toBe('text/html; charset=utf-8');
  });

  it('GET on the collection is 405', async () => {
    const res = await get('/files');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST, OPTIONS');
  });
});

describe('CORS on downloads', () => {
  it('allows any origin by default and exposes the download headers', async () => {
    const { path } = await createFinishedUpload(t.app, CONTENT);
    const res = await get(path, { Origin: 'https://somewhere.example.com', Range: 'bytes=0-1' });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const exposed = res.headers.get('access-control-expose-headers') ?? '';
    for (const header of ['Content-Disposition', 'Content-Range', 'Content-Length', 'Accept-Ranges']) expect(exposed).toContain(header);
  });

  it('errors carry CORS headers too', async () => {
    const res = await get('/files/0123456789abcdef0123456789abcdef', { Origin: 'https://somewhere.example.com' });
    expect(res.status).toBe(404);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('with CORS_ORIGINS, echoes an allowed origin and not others', async () => {
    const strict = await createTestApp({ CORS_ORIGINS: 'https://app.example.com' });
    apps.push(strict);
    const { path } = await createFinishedUpload(strict.app, CONTENT);

    const allowed = await get(path, { Origin: 'https://app.example.com' }, strict);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(allowed.headers.get('vary')).toContain('Origin');

    const foreign = await get(path, { Origin: 'https://evil.example.com' }, strict);
    expect(foreign.status).toBe(200);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
    expect(foreign.headers.get('access-control-expose-headers')).toBeNull();
    expect(foreign.headers.get('vary')).toContain('Origin');

    const none = await get(path, {}, strict);
    expect(none.headers.get('access-control-allow-origin')).toBeNull();
  });
});
