import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { allowedMethods, checkTusRequest, effectiveMethod, TUS_VERSION, type TusTarget } from './protocol-guard.js';

const MAX = 1000;
const COLLECTION: TusTarget = { kind: 'collection' };
const UPLOAD: TusTarget = { kind: 'upload', id: 'abc' };
const OFFSET_STREAM = 'application/offset+octet-stream';

function check(method: string, target: TusTarget, headers: Record<string, string>): HttpError | undefined {
  return checkTusRequest(method, target, new Headers(headers), MAX);
}

const post = (headers: Record<string, string>) => check('POST', COLLECTION, { 'Tus-Resumable': '1.0.0', ...headers });
const patch = (headers: Record<string, string>) =>
  check('PATCH', UPLOAD, { 'Tus-Resumable': '1.0.0', 'Content-Type': OFFSET_STREAM, 'Upload-Offset': '0', 'Content-Length': '10', ...headers });

function expectError(error: HttpError | undefined, code: string, status: number, message?: RegExp): HttpError {
  expect(error).toBeInstanceOf(HttpError);
  expect(error?.code).toBe(code);
  expect(error?.status).toBe(status);
  if (message) expect(error?.message).toMatch(message);
  expect(error?.body).toBe(`${code}: ${error?.message}\n`);
  return error as HttpError;
}

describe('effectiveMethod', () => {
  it('is the request method without an override', () => {
    expect(effectiveMethod('PATCH', new Headers())).toBe('PATCH');
  });

  it('takes X-HTTP-Method-Override, trimmed and upper-cased', () => {
    expect(effectiveMethod('POST', new Headers({ 'X-HTTP-Method-Override': ' patch ' }))).toBe('PATCH');
    expect(effectiveMethod('POST', new Headers({ 'x-http-method-override': 'DELETE' }))).toBe('DELETE');
  });

  it('ignores an empty override', () => {
    expect(effectiveMethod('POST', new Headers({ 'X-HTTP-Method-Override': '' }))).toBe('POST');
  });
});

describe('allowedMethods', () => {
  it('allows creation on the collection and the rest on an upload', () => {
    expect(allowedMethods(COLLECTION)).toEqual(['POST', 'OPTIONS']);
    expect(allowedMethods(UPLOAD)).toEqual(['HEAD', 'PATCH', 'DELETE', 'GET', 'OPTIONS']);
  });
});

describe('checkTusRequest: methods and version', () => {
  it.each([
    ['PATCH', COLLECTION, 'POST, OPTIONS'],
    ['GET', COLLECTION, 'POST, OPTIONS'],
    ['DELETE', COLLECTION, 'POST, OPTIONS'],
    ['POST', UPLOAD, 'HEAD, PATCH, DELETE, GET, OPTIONS'],
    ['PUT', UPLOAD, 'HEAD, PATCH, DELETE, GET, OPTIONS'],
    ['PROPFIND', UPLOAD, 'HEAD, PATCH, DELETE, GET, OPTIONS'],
    ['TRACE', COLLECTION, 'POST, OPTIONS'],
  ] as const)('%s on %o is 405 with Allow', (method, target, allow) => {
    const error = expectError(check(method, target, { 'Tus-Resumable': '1.0.0' }), 'ERR_METHOD_NOT_ALLOWED', 405);
    expect(error.headers).toEqual({ Allow: allow });
    expect(error.message).toContain(method);
  });

  it('cuts a huge method name in the message', () => {
    const error = check('X'.repeat(5000), UPLOAD, {});
    expect(error?.message.length).toBeLessThan(100);
  });

  it('lets OPTIONS and GET through without Tus-Resumable', () => {
    expect(check('OPTIONS', COLLECTION, {})).toBeUndefined();
    expect(check('OPTIONS', UPLOAD, {})).toBeUndefined();
    expect(check('GET', UPLOAD, {})).toBeUndefined();
  });

  it.each([
    ['missing', {}, /Tus-Resumable header is missing/],
    ['0.2.2', { 'Tus-Resumable': '0.2.2' }, /Tus-Resumable 0\.2\.2 is not supported; this server speaks tus 1\.0\.0/],
    ['2.0.0', { 'Tus-Resumable': '2.0.0' }, /not supported/],
  ])('Tus-Resumable %s is 412 with Tus-Version', (_label, headers, message) => {
    for (const [method, target] of [
      ['POST', COLLECTION],
      ['HEAD', UPLOAD],
      ['PATCH', UPLOAD],
      ['DELETE', UPLOAD],
    ] as const) {
      const error = expectError(check(method, target, headers), 'ERR_UNSUPPORTED_VERSION', 412, message);
      expect(error.headers['Tus-Version']).toBe(TUS_VERSION);
    }
  });

  it('passes HEAD and DELETE with the right version', () => {
    expect(check('HEAD', UPLOAD, { 'Tus-Resumable': '1.0.0' })).toBeUndefined();
    expect(check('DELETE', UPLOAD, { 'Tus-Resumable': '1.0.0' })).toBeUndefined();
  });
});

describe('checkTusRequest: creation', () => {
  it('accepts Upload-Length or Upload-Defer-Length: 1', () => {
    expect(post({ 'Upload-Length': '10' })).toBeUndefined();
    expect(post({ 'Upload-Length': '0' })).toBeUndefined();
    expect(post({ 'Upload-Length': String(MAX) })).toBeUndefined();
    expect(post({ 'Upload-Defer-Length': '1' })).toBeUndefined();
  });

  it('needs exactly one of them', () => {
    expectError(post({}), 'ERR_INVALID_UPLOAD_LENGTH', 400, /exactly one/);
    expectError(post({ 'Upload-Length': '10', 'Upload-Defer-Length': '1' }), 'ERR_INVALID_UPLOAD_LENGTH', 400, /exactly one/);
  });

  it.each(['2', '0', 'true', '1.0'])('refuses Upload-Defer-Length: %s', (value) => {
    expectError(post({ 'Upload-Defer-Length': value }), 'ERR_INVALID_UPLOAD_LENGTH', 400, /Upload-Defer-Length must be 1/);
  });

  it.each(['-1', 'abc', '1.5', '0x10', '1e3', '', '+5', '10 10'])('refuses Upload-Length %j as 400', (value) => {
    expectError(post({ 'Upload-Length': value }), 'ERR_INVALID_UPLOAD_LENGTH', 400, /non-negative integer/);
  });

  it.each([String(MAX + 1), '99999999999999999999999', '9007199254740993'])('refuses Upload-Length %s as 413', (value) => {
    expectError(post({ 'Upload-Length': value }), 'ERR_MAX_SIZE_EXCEEDED', 413, /maximum upload size/);
  });

  it('accepts Upload-Concat: partial like any creation, and final;<urls> without a length or a body', () => {
    expect(post({ 'Upload-Length': '1', 'Upload-Concat': 'partial' })).toBeUndefined();
    expect(post({ 'Upload-Defer-Length': '1', 'Upload-Concat': ' partial ' })).toBeUndefined();
    expect(post({ 'Upload-Concat': 'final;/files/a /files/b' })).toBeUndefined();
    expectError(post({ 'Upload-Concat': 'partial' }), 'ERR_INVALID_UPLOAD_LENGTH', 400);
  });

  it.each([
    [{ 'Upload-Concat': 'final;/files/a', 'Upload-Length': '3' }, /send no Upload-Length/],
    [{ 'Upload-Concat': 'final;/files/a', 'Upload-Defer-Length': '1' }, /send no Upload-Length/],
    [{ 'Upload-Concat': 'final;/files/a', 'Content-Type': 'application/offset+octet-stream' }, /no body/],
    [{ 'Upload-Concat': 'final;' }, /names no partial uploads/],
    [{ 'Upload-Concat': 'Final;/files/a' }, /must be "partial" or "final;/],
    [{ 'Upload-Concat': 'partial;x', 'Upload-Length': '1' }, /must be "partial" or "final;/],
  ])('refuses Upload-Concat %j', (headers, message) => {
    expectError(post(headers), 'ERR_INVALID_CONCAT', 400, message);
  });

  it.each(['filename', 'filename ZmlsZS50eHQ=', 'a YQ==,b', 'name ZmlsZS50eHQ=,empty'])('accepts Upload-Metadata %j', (metadata) => {
    expect(post({ 'Upload-Length': '1', 'Upload-Metadata': metadata })).toBeUndefined();
  });

  it.each([
    ['no base64 padding', 'a YQ'],
    ['invalid base64 characters', 'a Y!=='],
    ['duplicate keys', 'a YQ==,a Yg=='],
    ['a key with a space', 'my key YQ=='],
    ['three tokens', 'a b c'],
    ['an empty pair', 'a YQ==,,b Yg=='],
    ['a non-ASCII key', 'clé YQ=='],
  ])('refuses Upload-Metadata with %s', (_label, metadata) => {
    expectError(post({ 'Upload-Length': '1', 'Upload-Metadata': metadata }), 'ERR_INVALID_UPLOAD_METADATA', 400);
  });

  it('refuses a creation-with-upload body past the maximum', () => {
    expectError(post({ 'Upload-Defer-Length': '1', 'Content-Length': String(MAX + 1) }), 'ERR_MAX_SIZE_EXCEEDED', 413);
    expect(post({ 'Upload-Length': '10', 'Content-Length': '10' })).toBeUndefined();
  });

  it('refuses a creation-with-upload body longer than Upload-Length before anything is created', () => {
    const withBody = { 'Upload-Length': '10', 'Content-Type': OFFSET_STREAM };
    expectError(post({ ...withBody, 'Content-Length': '11' }), 'ERR_UPLOAD_SIZE_EXCEEDED', 413, /11 bytes.*Upload-Length 10/);
    expect(post({ ...withBody, 'Content-Length': '10' })).toBeUndefined();
    expect(post({ ...withBody, 'Content-Length': '3' })).toBeUndefined();
    // A body that is not upload data is ignored by creation, whatever its length.
    expect(post({ 'Upload-Length': '10', 'Content-Type': 'application/json', 'Content-Length': '50' })).toBeUndefined();
    expect(post({ 'Upload-Defer-Length': '1', 'Content-Type': OFFSET_STREAM, 'Content-Length': '50' })).toBeUndefined();
  });
});

describe('checkTusRequest: PATCH', () => {
  it('accepts a well-formed PATCH', () => {
    expect(patch({})).toBeUndefined();
    expect(patch({ 'Content-Type': 'Application/Offset+Octet-Stream' })).toBeUndefined();
    const chunked = { 'Tus-Resumable': '1.0.0', 'Content-Type': OFFSET_STREAM, 'Upload-Offset': '0', 'Transfer-Encoding': 'chunked' };
    expect(check('PATCH', UPLOAD, chunked)).toBeUndefined();
  });

  it.each([
    ['missing', undefined],
    ['application/octet-stream', 'application/octet-stream'],
    ['text/plain', 'text/plain'],
    ['multipart/form-data', 'multipart/form-data; boundary=x'],
  ])('refuses Content-Type %s with 415', (_label, contentType) => {
    const headers: Record<string, string> = { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Length': '1' };
    if (contentType) headers['Content-Type'] = contentType;
    expectError(check('PATCH', UPLOAD, headers), 'ERR_INVALID_CONTENT_TYPE', 415, /application\/offset\+octet-stream/);
  });

  it('needs Upload-Offset', () => {
    const headers = { 'Tus-Resumable': '1.0.0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '1' };
    expectError(check('PATCH', UPLOAD, headers), 'ERR_INVALID_OFFSET', 400, /required/);
  });

  it.each(['-1', 'abc', '1.5', '0x10', '1e3', '', '99999999999999999999999'])('refuses Upload-Offset %j', (value) => {
    expectError(patch({ 'Upload-Offset': value }), 'ERR_INVALID_OFFSET', 400);
  });

  it('refuses an offset past the maximum size', () => {
    expectError(patch({ 'Upload-Offset': String(MAX + 1) }), 'ERR_INVALID_OFFSET', 400, /past the maximum/);
  });

  it('needs a body length unless it only declares Upload-Length', () => {
    const headers = { 'Tus-Resumable': '1.0.0', 'Content-Type': OFFSET_STREAM, 'Upload-Offset': '0' };
    expectError(check('PATCH', UPLOAD, headers), 'ERR_CONTENT_LENGTH_REQUIRED', 411);
    expect(check('PATCH', UPLOAD, { ...headers, 'Upload-Length': '5' })).toBeUndefined();
  });

  it('refuses a bad Content-Length and a body past the maximum', () => {
    expectError(patch({ 'Content-Length': 'ten' }), 'ERR_INVALID_REQUEST', 400, /Content-Length/);
    expectError(patch({ 'Upload-Offset': '995', 'Content-Length': '6' }), 'ERR_MAX_SIZE_EXCEEDED', 413);
    expect(patch({ 'Upload-Offset': '995', 'Content-Length': '5' })).toBeUndefined();
  });

  it('checks a declared Upload-Length', () => {
    expectError(patch({ 'Upload-Length': 'x' }), 'ERR_INVALID_UPLOAD_LENGTH', 400);
    expectError(patch({ 'Upload-Length': String(MAX + 1) }), 'ERR_MAX_SIZE_EXCEEDED', 413);
  });

  it('never echoes more than a short prefix of a bad header', () => {
    const long = 'x'.repeat(10_000);
    for (const error of [patch({ 'Upload-Offset': long }), post({ 'Upload-Length': long }), patch({ 'Content-Type': long })]) {
      expect(error).toBeInstanceOf(HttpError);
      expect(error!.message.length).toBeLessThan(300);
    }
  });
});
