import { describe, expect, it } from 'vitest';
import { DetailedError, type HttpRequest, type HttpResponse } from 'tus-js-client';
import { describeFailure, failureLine, isRetryable, messageFromBody } from './failure.js';

function request(method = 'POST'): HttpRequest {
  return {
    getMethod: () => method,
    getURL: () => 'http://127.0.0.1:8080/files/',
    setHeader: () => undefined,
    getHeader: () => undefined,
    setProgressHandler: () => undefined,
    send: () => Promise.reject(new Error('not sent')),
    abort: () => Promise.resolve(),
    getUnderlyingObject: () => null,
  };
}

function response(status: number, body: string): HttpResponse {
  return { getStatus: () => status, getHeader: () => undefined, getBody: () => body, getUnderlyingObject: () => null };
}

/** What tus-js-client emits (its typings leave out the constructor's request, response and cause). */
function detailedError(message: string, parts: { req?: HttpRequest; res?: HttpResponse; cause?: Error }): DetailedError {
  return Object.assign(new DetailedError(message), { originalRequest: parts.req ?? request(), originalResponse: parts.res ?? null, causingError: parts.cause ?? null });
}

const httpError = (status: number, body: string) => detailedError('tus: unexpected response while creating upload', { res: response(status, body) });

describe('messageFromBody', () => {
  it('takes the message of an ERR_CODE: message body', () => {
    expect(messageFromBody('ERR_TYPE_NOT_ALLOWED: filetype application/x-msdownload is not allowed; allowed: video/*\n')).toBe('filetype application/x-msdownload is not allowed; allowed: video/*');
  });

  it('keeps a short plain body, and ignores HTML and empty ones', () => {
    expect(messageFromBody('Upload-Length exceeds the limit\nmore')).toBe('Upload-Length exceeds the limit');
    expect(messageFromBody('<html><body>502 Bad Gateway</body></html>')).toBeUndefined();
    expect(messageFromBody('  ')).toBeUndefined();
  });

  it('cuts a very long body', () => {
    expect(messageFromBody('x'.repeat(1000))?.length).toBeLessThan(310);
  });
});

describe('describeFailure and failureLine', () => {
  it('says in words what the server refused', () => {
    const failure = describeFailure(httpError(415, 'ERR_TYPE_NOT_ALLOWED: filetype application/x-msdownload is not allowed\n'));
    expect(failure).toEqual({ kind: 'refused', status: 415, message: 'filetype application/x-msdownload is not allowed' });
    expect(failureLine('movie.mp4', failure)).toBe('upload of movie.mp4 refused by the server: filetype application/x-msdownload is not allowed (415)');
  });

  it('falls back to the status text when the body has no words', () => {
    expect(describeFailure(httpError(401, ''))).toEqual({ kind: 'refused', status: 401, message: 'Unauthorized' });
    expect(failureLine('a', describeFailure(httpError(503, '<h1>down</h1>')))).toBe('upload of a failed: the server answered 503: Service Unavailable');
  });

  it('names a network error by what happened', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const failure = describeFailure(detailedError('tus: failed to create upload', { cause: refused }));
    expect(failure).toEqual({ kind: 'network', status: undefined, message: 'the server refused the connection (ECONNREFUSED)' });
    expect(failureLine('a.bin', failure)).toBe('upload of a.bin failed: the server refused the connection (ECONNREFUSED)');
  });

  it('keeps other errors without the "tus: " prefix', () => {
    expect(describeFailure(new Error('tus: invalid or missing Location header'))).toEqual({ kind: 'other', status: undefined, message: 'invalid or missing Location header' });
  });
});

describe('isRetryable', () => {
  it('retries network errors, 5xx, 409 and 423, but not other 4xx', () => {
    expect(isRetryable(detailedError('x', { cause: new Error('reset') }))).toBe(true);
    expect(isRetryable(httpError(503, ''))).toBe(true);
    expect(isRetryable(httpError(409, ''))).toBe(true);
    expect(isRetryable(httpError(423, ''))).toBe(true);
    expect(isRetryable(httpError(401, ''))).toBe(false);
    expect(isRetryable(httpError(413, ''))).toBe(false);
  });
});
