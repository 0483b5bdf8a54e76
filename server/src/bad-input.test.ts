import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from './testing/create-test-app.js';
import { buildRequest, rawRequest, waitFor, type RawResponse } from './testing/http-test-helpers.js';

/**
 * Hostile and broken requests over a real socket, so Node's HTTP parser is part of the test.
 * Each must get a 4xx (never a 5xx, never a hang) and leave the server serving.
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;

const TUSD_BODY = /^ERR_[A-Z_]+: [^\n]+\n?$/;
const OFFSET_STREAM = 'application/offset+octet-stream';
const TUS = { 'Tus-Resumable': '1.0.0' };

beforeAll(async () => {
  // Every test leaves an unfinished upload from this one client: well over MAX_UPLOADS_IN_PROGRESS's 100.
  server = await startTestServer({ MAX_UPLOAD_SIZE: '1MiB', MAX_UPLOADS_IN_PROGRESS: '0' });
});

afterAll(async () => {
  await server.close();
});

afterEach(async () => {
  // Whatever the test sent, the server still answers OPTIONS and creates uploads.
  const options = await send('OPTIONS', '/files');
  expect(options.status).toBe(204);
  const created = await send('POST', '/files', { ...TUS, 'Upload-Length': '1', 'Content-Length': '0' });
  expect(created.status).toBe(201);
});

function send(method: string, target: string, headers: Record<string, string> = {}, body: string | Buffer = '', timeoutMs = 5_000): Promise<RawResponse> {
  return rawRequest(server.running.port, buildRequest(method, target, headers, body), { timeoutMs, head: method === 'HEAD' });
}

function expect4xx(res: RawResponse, statuses?: number[]): void {
  expect(res.status, `status ${res.status} ${res.body}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `status ${res.status} ${res.body}`).toBeLessThan(500);
  if (statuses) expect(statuses).toContain(res.status);
}

/** When we (not Node's parser) answered, the body is tusd-style and leaks nothing. */
function expectTusdBody(res: RawResponse, code?: string): void {
  expect(res.body).toMatch(TUSD_BODY);
  if (code) expect(res.body.startsWith(`${code}: `)).toBe(true);
  expect(res.body).not.toContain(server.storageDir);
  expect(res.body).not.toMatch(/\bat .+:\d+:\d+/);
}

async function createUpload(length: number): Promise<string> {
  const res = await send('POST', '/files', { ...TUS, 'Upload-Length': String(length), 'Content-Length': '0' });
  expect(res.status).toBe(201);
  return new URL(res.headers.location!).pathname;
}

async function offsetOf(uploadPath: string): Promise<number> {
  const res = await send('HEAD', uploadPath, TUS);
  expect(res.status).toBe(200);
  return Number(res.headers['upload-offset']);
}

function patchHeaders(offset: string, length: number | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { ...TUS, 'Upload-Offset': offset, 'Content-Type': OFFSET_STREAM, ...extra };
  if (length !== undefined) headers['Content-Length'] = String(length);
  return headers;
}

describe('Upload-Length', () => {
  it.each([
    ['-1', 400],
    ['abc', 400],
    ['1.5', 400],
    ['0x10', 400],
    ['1e3', 400],
    ['+10', 400],
    ['10 20', 400],
    ['', 400],
    ['99999999999999999999999', 413],
    ['9007199254740993', 413],
    ['1048577', 413],
  ])('POST with Upload-Length %j → %d', async (value, status) => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': value, 'Content-Length': '0' });
    expect4xx(res, [status]);
    expectTusdBody(res, status === 413 ? 'ERR_MAX_SIZE_EXCEEDED' : 'ERR_INVALID_UPLOAD_LENGTH');
    expect(res.headers.location).toBeUndefined();
  });

  it.each(['-1', 'abc', '1.5', '0x10', '99999999999999999999999'])('PATCH declaring Upload-Length %j is refused', async (value) => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Defer-Length': '1', 'Content-Length': '0' });
    const uploadPath = new URL(res.headers.location!).pathname;
    const patch = await send('PATCH', uploadPath, patchHeaders('0', 0, { 'Upload-Length': value }));
    expect4xx(patch, [400, 413]);
    expectTusdBody(patch);
    expect((await send('HEAD', uploadPath, TUS)).headers['upload-defer-length']).toBe('1');
  });

  it('Upload-Defer-Length other than 1 is 400', async () => {
    for (const value of ['2', '0', 'yes']) {
      const res = await send('POST', '/files', { ...TUS, 'Upload-Defer-Length': value, 'Content-Length': '0' });
      expect4xx(res, [400]);
      expectTusdBody(res, 'ERR_INVALID_UPLOAD_LENGTH');
    }
  });

  it('both Upload-Length and Upload-Defer-Length is 400, neither is 400', async () => {
    const both = await send('POST', '/files', { ...TUS, 'Upload-Length': '5', 'Upload-Defer-Length': '1', 'Content-Length': '0' });
    expect4xx(both, [400]);
    expectTusdBody(both, 'ERR_INVALID_UPLOAD_LENGTH');
    const neither = await send('POST', '/files', { ...TUS, 'Content-Length': '0' });
    expect4xx(neither, [400]);
    expectTusdBody(neither, 'ERR_INVALID_UPLOAD_LENGTH');
  });
});

describe('Upload-Offset', () => {
  it.each(['-1', 'abc', '1.5', '0x10', '1e3', '', '99999999999999999999999', '007'])('PATCH with Upload-Offset %j → 400, nothing stored', async (value) => {
    const uploadPath = await createUpload(10);
    const res = await send('PATCH', uploadPath, patchHeaders(value, 3), 'abc');
    expect4xx(res, [400]);
    expectTusdBody(res);
    expect(await offsetOf(uploadPath)).toBe(0);
  });

  it('an offset past the maximum size is 400', async () => {
    const uploadPath = await createUpload(10);
    const res = await send('PATCH', uploadPath, patchHeaders(String(2 * 1024 * 1024), 1), 'a');
    expect4xx(res, [400]);
    expectTusdBody(res, 'ERR_INVALID_OFFSET');
  });

  it('a mismatched offset with a large body is 409 and does not hang', async () => {
    const uploadPath = await createUpload(900_000);
    const body = Buffer.alloc(800_000, 7);
    const res = await send('PATCH', uploadPath, patchHeaders('5', body.length), body, 10_000);
    expect4xx(res, [409]);
    expectTusdBody(res, 'ERR_MISMATCHED_OFFSET');
    expect(await offsetOf(uploadPath)).toBe(0);
  });
});

describe('Upload-Metadata', () => {
  it.each([
    ['a value that is not base64', 'filename hello.txt'],
    ['base64 without padding', 'filename aGVsbG8'],
    ['invalid base64 characters', 'filename aGVs!G8='],
    ['duplicate keys', 'filename aGVsbG8=,filename aGVsbG8='],
    ['a key with a space', 'file name aGVsbG8='],
    ['an empty pair', 'filename aGVsbG8=,,x YQ=='],
    ['only a comma', ','],
    ['a non-ASCII key', 'cl\u00e9 YQ=='],
  ])('POST with %s is 400 and creates nothing', async (_label, value) => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '1', 'Upload-Metadata': value, 'Content-Length': '0' });
    expect4xx(res, [400]);
    expectTusdBody(res);
    expect(res.headers.location).toBeUndefined();
  });

  it('an empty Upload-Metadata header is refused or ignored, never a 5xx', async () => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '1', 'Upload-Metadata': '', 'Content-Length': '0' });
    expect([201, 400]).toContain(res.status);
    if (res.status === 400) expectTusdBody(res);
  });

  it('a 100 KB Upload-Metadata is 431 or 400', async () => {
    const huge = `filename ${Buffer.from('x'.repeat(75_000)).toString('base64')}`;
    expect(huge.length).toBeGreaterThan(100_000);
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '1', 'Upload-Metadata': huge, 'Content-Length': '0' });
    expect4xx(res, [400, 431]);
  });

  it('a 100 KB request target is 431 or 414 or 404', async () => {
    const res = await send('HEAD', `/files/${'a'.repeat(100_000)}`, TUS);
    expect4xx(res, [404, 414, 431]);
  });
});

describe('upload ids in the URL', () => {
  const ids = [
    ['path traversal', '../../etc/passwd'],
    ['encoded traversal', '%2e%2e%2f'],
    ['encoded traversal to a file', '%2e%2e%2fetc%2fpasswd'],
    ['a record name', 'abc.json'],
    ['a 10 KB id', 'a'.repeat(10_000)],
    ['an encoded NUL byte', 'abc%00def'],
    ['an encoded newline', 'abc%0d%0aSet-Cookie:%20x'],
    ['invalid percent-encoding', '%E0%A4%A'],
    ['the tombstone folder', '.expired'],
    ['the temp folder', '.tmp'],
  ];

  it.each(ids)('%s: HEAD, PATCH, DELETE and GET answer 4xx', async (_label, id) => {
    const target = `/files/${id}`;
    const head = await send('HEAD', target, TUS);
    expect4xx(head, [404]);
    for (const [method, headers, body] of [
      ['PATCH', patchHeaders('0', 1), 'x'],
      ['DELETE', TUS, ''],
      ['GET', {}, ''],
    ] as const) {
      const res = await send(method, target, headers, body);
      expect4xx(res, [404]);
      expectTusdBody(res);
    }
  });

  it('encoded dots (/files/%2e%2e) name no upload: the tus 404, never the page at / that URL rules resolve them to', async () => {
    for (const method of ['GET', 'HEAD', 'PATCH', 'DELETE']) {
      const res = await send(method, '/files/%2e%2e', TUS);
      expect4xx(res, [404]);
      expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(res.headers['tus-resumable']).toBe('1.0.0');
      if (method !== 'HEAD') expectTusdBody(res, 'ERR_UPLOAD_NOT_FOUND');
    }
  });

  it.each([
    ['a raw control character', '/files/abc\u0001def'],
    ['a raw NUL byte', '/files/abc\u0000def'],
    ['a raw space', '/files/abc def'],
    ['a raw DEL', '/files/abc\u007fdef'],
  ])('%s in the request line is refused by the parser', async (_label, target) => {
    const res = await rawRequest(server.running.port, `HEAD ${target} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n`, { head: true });
    expect4xx(res, [400, 404]);
  });

  it('nothing was created outside the storage directory', async () => {
    const parent = path.dirname(server.storageDir);
    const stray = (await fs.readdir(parent)).filter((name) => /passwd|^abc|^etc|^%|^\.\./.test(name));
    expect(stray).toEqual([]);
    const inside = (await fs.readdir(server.storageDir)).filter((name) => /passwd|^abc|^etc|^aaaa/.test(name));
    expect(inside).toEqual([]);
  });
});

describe('bodies and their lengths', () => {
  it('a PATCH with neither Content-Length nor Transfer-Encoding is 411', async () => {
    const uploadPath = await createUpload(5);
    const res = await send('PATCH', uploadPath, patchHeaders('0', undefined));
    expect4xx(res, [411]);
    expectTusdBody(res, 'ERR_CONTENT_LENGTH_REQUIRED');
  });

  it('a PATCH with the wrong Content-Type is 415', async () => {
    const uploadPath = await createUpload(5);
    for (const contentType of ['application/octet-stream', 'text/plain', 'application/offset+octet-streamx']) {
      const res = await send('PATCH', uploadPath, { ...TUS, 'Upload-Offset': '0', 'Content-Type': contentType, 'Content-Length': '2' }, 'ab');
      expect4xx(res, [415]);
      expectTusdBody(res, 'ERR_INVALID_CONTENT_TYPE');
    }
    expect(await offsetOf(uploadPath)).toBe(0);
  });

  it('a PATCH body larger than Upload-Length is 413 and nothing beyond it is stored', async () => {
    const uploadPath = await createUpload(10);
    const res = await send('PATCH', uploadPath, patchHeaders('0', 20), '01234567890123456789');
    expect4xx(res, [413]);
    expectTusdBody(res);
    expect(await offsetOf(uploadPath)).toBe(0);
    expect((await fs.stat(path.join(server.storageDir, uploadPath.split('/').pop()!))).size).toBe(0);
  });

  it('a chunked PATCH body running past Upload-Length is 413 and nothing beyond it is stored', async () => {
    const uploadPath = await createUpload(10);
    const chunked = '5\r\n01234\r\n5\r\n56789\r\na\r\nabcdefghij\r\n0\r\n\r\n';
    const res = await send('PATCH', uploadPath, patchHeaders('0', undefined, { 'Transfer-Encoding': 'chunked' }), chunked);
    expect4xx(res, [413]);
    expectTusdBody(res);
    const offset = await offsetOf(uploadPath);
    expect(offset).toBeLessThanOrEqual(10);
    const stored = await fs.readFile(path.join(server.storageDir, uploadPath.split('/').pop()!), 'utf8');
    expect(stored.length).toBe(offset);
    expect('0123456789'.startsWith(stored)).toBe(true);
  });

  it('a creation-with-upload body larger than Upload-Length is 413 and leaves no upload', async () => {
    const before = (await fs.readdir(server.storageDir)).length;
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '3', 'Content-Type': OFFSET_STREAM, 'Content-Length': '6' }, 'abcdef');
    expect4xx(res, [413]);
    expectTusdBody(res);
    expect(res.headers.location).toBeUndefined();
    expect((await fs.readdir(server.storageDir)).length).toBe(before);
  });

  it('a body past MAX_UPLOAD_SIZE on a deferred-length upload is 413', async () => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Defer-Length': '1', 'Content-Length': '0' });
    const uploadPath = new URL(res.headers.location!).pathname;
    const patch = await send('PATCH', uploadPath, patchHeaders('0', 1024 * 1024 + 1), Buffer.alloc(1024 * 1024 + 1), 10_000);
    expect4xx(patch, [413]);
    expectTusdBody(patch, 'ERR_MAX_SIZE_EXCEEDED');
  });

  it('extra bytes after Content-Length are never stored', async () => {
    const uploadPath = await createUpload(10);
    const res = await send('PATCH', uploadPath, patchHeaders('0', 5), 'abcdeXYZ\r\n\r\n');
    // Node parses the extra bytes as a second, malformed request and may answer that 400 first.
    expect([204, 400]).toContain(res.status);
    if (res.status === 204) expect(res.headers['upload-offset']).toBe('5');
    const file = path.join(server.storageDir, uploadPath.split('/').pop()!);
    await waitFor(async () => (await offsetOf(uploadPath)) === 5, { timeoutMs: 3_000 }).catch(() => undefined);
    const stored = await fs.readFile(file, 'utf8');
    expect('abcde'.startsWith(stored)).toBe(true);
  });

  it('a Content-Length shorter than the body stores exactly Content-Length bytes', async () => {
    const uploadPath = await createUpload(10);
    // The rest of the body is a complete second request on the same connection.
    const second = buildRequest('HEAD', uploadPath, TUS).toString('latin1');
    const res = await send('PATCH', uploadPath, patchHeaders('0', 5, { Connection: 'keep-alive' }), `abcde${second}`);
    expect(res.status).toBe(204);
    expect(res.headers['upload-offset']).toBe('5');
    expect(await fs.readFile(path.join(server.storageDir, uploadPath.split('/').pop()!), 'utf8')).toBe('abcde');
  });

  it.each([
    ['two different Content-Lengths', { 'Content-Length': '3', 'content-length': '5' }, 'abcde'],
    ['Content-Length and Transfer-Encoding', { 'Content-Length': '3', 'Transfer-Encoding': 'chunked' }, '3\r\nabc\r\n0\r\n\r\n'],
    ['a negative Content-Length', { 'Content-Length': '-3' }, 'abc'],
    ['a non-numeric Content-Length', { 'Content-Length': 'three' }, 'abc'],
    ['an unknown Transfer-Encoding', { 'Transfer-Encoding': 'gzip' }, 'abc'],
  ])('%s is 400 and stores nothing', async (_label, lengths, body) => {
    const uploadPath = await createUpload(10);
    const res = await send('PATCH', uploadPath, { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, ...lengths }, body);
    expect4xx(res);
    expect(await offsetOf(uploadPath)).toBe(0);
  });
});

describe('methods and extensions', () => {
  it.each(['PROPFIND', 'TRACE', 'PUT', 'PURGE', 'MKCOL', 'LOCK'])('%s is 405 on the collection and on an upload', async (method) => {
    const uploadPath = await createUpload(3);
    for (const target of ['/files', uploadPath]) {
      const res = await send(method, target, TUS);
      expect4xx(res, [405]);
      expectTusdBody(res, 'ERR_METHOD_NOT_ALLOWED');
      expect(res.headers.allow).toBeTruthy();
    }
  });

  it('a method Node does not know (BREW) is refused by the parser with 400', async () => {
    const res = await send('BREW', '/files', TUS);
    expect4xx(res, [400]);
  });

  it('CONNECT is refused or dropped, never a 5xx, never a hang', async () => {
    const res = await rawRequest(server.running.port, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n', { timeoutMs: 5_000 });
    // Node closes a CONNECT it has no handler for without an answer (status 0).
    expect(res.status === 0 || (res.status >= 400 && res.status < 500)).toBe(true);
  });

  it('an override to an unknown method is 405', async () => {
    const res = await send('POST', '/files', { ...TUS, 'X-HTTP-Method-Override': 'BREW', 'Content-Length': '0' });
    expect4xx(res, [405]);
    expectTusdBody(res, 'ERR_METHOD_NOT_ALLOWED');
  });

  it('PATCH on the collection URL is 405', async () => {
    for (const target of ['/files', '/files/']) {
      const res = await send('PATCH', target, patchHeaders('0', 1), 'x');
      expect4xx(res, [405]);
      expectTusdBody(res, 'ERR_METHOD_NOT_ALLOWED');
      expect(res.headers.allow).toBe('POST, OPTIONS');
    }
  });

  it('POST on an upload URL is 405', async () => {
    const uploadPath = await createUpload(3);
    const res = await send('POST', uploadPath, { ...TUS, 'Upload-Length': '1', 'Content-Length': '0' });
    expect4xx(res, [405]);
  });

  it.each([
    ['final;/files/a /files/b', { 'Upload-Length': '5' }],
    ['final;/files/a /files/b', {}],
    ['final;a', {}],
    ['final;//evil.example/files/a', {}],
    ['final;', {}],
    ['nonsense', { 'Upload-Length': '5' }],
    ['partial;x', { 'Upload-Length': '5' }],
  ])('Upload-Concat: %s is 400', async (value, headers) => {
    const res = await send('POST', '/files', { ...TUS, ...headers, 'Upload-Concat': value, 'Content-Length': '0' });
    expect4xx(res, [400]);
    expectTusdBody(res, 'ERR_INVALID_CONCAT');
  });

  it.each([
    ['missing', {}],
    ['0.2.2', { 'Tus-Resumable': '0.2.2' }],
    ['garbage', { 'Tus-Resumable': '\u00ff\u00fe' }],
  ])('Tus-Resumable %s is 412 with Tus-Version', async (_label, version) => {
    const res = await send('POST', '/files', { ...version, 'Upload-Length': '1', 'Content-Length': '0' });
    expect4xx(res, [412]);
    expect(res.headers['tus-version']).toBe('1.0.0');
    expectTusdBody(res, 'ERR_UNSUPPORTED_VERSION');
  });

  it('headers only @tus/server validates still get a tusd-style 400', async () => {
    const uploadPath = await createUpload(5);
    const extras: Record<string, string>[] = [{ 'X-Forwarded-Proto': 'gopher' }, { 'Upload-Metadata': 'not valid metadata' }, { 'Tus-Version': '9.9.9' }];
    for (const extra of extras) {
      const res = await send('PATCH', uploadPath, patchHeaders('0', 2, extra), 'ab');
      expect4xx(res, [400]);
      expectTusdBody(res, 'ERR_INVALID_REQUEST');
    }
    expect(await offsetOf(uploadPath)).toBe(0);
  });
});

describe('not HTTP at all', () => {
  it.each([
    ['garbage bytes', '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003'],
    ['a bare line', 'hello\r\n\r\n'],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n'],
    ['a bad HTTP version', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n'],
  ])('%s is 400 or dropped', async (_label, request) => {
    const res = await rawRequest(server.running.port, Buffer.from(request, 'latin1'), { timeoutMs: 5_000 });
    expect(res.status === 0 || (res.status >= 400 && res.status < 500)).toBe(true);
  });
});
