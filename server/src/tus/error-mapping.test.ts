import { ERRORS } from '@tus/utils';
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { translateTusError } from './error-mapping.js';

const MAX = 2 * 1024 ** 3;
const noHeaders = new Headers();

describe('translateTusError', () => {
  it.each([
    ['FILE_NOT_FOUND', 'ERR_UPLOAD_NOT_FOUND', 404],
    ['FILE_NO_LONGER_EXISTS', 'ERR_UPLOAD_GONE', 410],
    ['INVALID_OFFSET', 'ERR_MISMATCHED_OFFSET', 409],
    ['ERR_LOCK_TIMEOUT', 'ERR_UPLOAD_LOCKED', 423],
    ['INVALID_CONTENT_TYPE', 'ERR_INVALID_CONTENT_TYPE', 415],
    ['INVALID_LENGTH', 'ERR_INVALID_UPLOAD_LENGTH', 400],
    ['INVALID_METADATA', 'ERR_INVALID_UPLOAD_METADATA', 400],
    ['MISSING_OFFSET', 'ERR_INVALID_OFFSET', 400],
    ['ABORTED', 'ERR_UPLOAD_INTERRUPTED', 400],
    ['UNSUPPORTED_CONCATENATION_EXTENSION', 'ERR_UNSUPPORTED_EXTENSION', 400],
    ['ERR_SIZE_EXCEEDED', 'ERR_UPLOAD_SIZE_EXCEEDED', 413],
  ] as const)('%s becomes %s (%d)', (tusName, code, status) => {
    const error = translateTusError(ERRORS[tusName], noHeaders, MAX);
    expect(error).toBeInstanceOf(HttpError);
    expect(error?.code).toBe(code);
    expect(error?.status).toBe(status);
    expect(error?.body).toMatch(new RegExp(`^${code}: .+\\n$`));
  });

  it('recognizes a copy of a known error by status and body', () => {
    const copy = { ...ERRORS.FILE_NOT_FOUND };
    expect(translateTusError(copy, noHeaders, MAX)?.code).toBe('ERR_UPLOAD_NOT_FOUND');
  });

  it('names both sizes in a 413 for an Upload-Length over the limit', () => {
    const error = translateTusError(ERRORS.ERR_MAX_SIZE_EXCEEDED, new Headers({ 'Upload-Length': '3221225472' }), MAX);
    expect(error?.status).toBe(413);
    expect(error?.message).toBe('the upload would be 3 GiB (3221225472 bytes); the maximum upload size is 2 GiB (2147483648 bytes)');
  });

  it('uses offset + Content-Length when there is no Upload-Length', () => {
    const error = translateTusError(ERRORS.ERR_MAX_SIZE_EXCEEDED, new Headers({ 'Upload-Offset': '100', 'Content-Length': '2147483600' }), MAX);
    expect(error?.message).toContain('(2147483700 bytes)');
  });

  it('says what happened when the body size was not declared', () => {
    const error = translateTusError(ERRORS.ERR_MAX_SIZE_EXCEEDED, new Headers({ 'Transfer-Encoding': 'chunked' }), MAX);
    expect(error?.code).toBe('ERR_MAX_SIZE_EXCEEDED');
    expect(error?.message).toContain('2147483648 bytes');
    expect(error?.message).toContain('not stored');
  });

  it('answers a storage write failure with a retryable 503', () => {
    const error = translateTusError(ERRORS.FILE_WRITE_ERROR, noHeaders, MAX);
    expect(error?.status).toBe(503);
    expect(error?.code).toBe('ERR_STORAGE_UNAVAILABLE');
    expect(error?.headers['Retry-After']).toBe('5');
  });

  it('passes our own HttpError through', () => {
    const own = new HttpError('ERR_UPLOAD_LOCKED', 'busy');
    expect(translateTusError(own, noHeaders, MAX)).toBe(own);
  });

  it.each([
    ['a plain Error', new Error('EACCES: permission denied, open /srv/data/x')],
    ['UNKNOWN_ERROR', ERRORS.UNKNOWN_ERROR],
    ['a string', 'boom'],
    ['undefined', undefined],
    ['an object with only a status', { status_code: 500 }],
  ])('leaves %s to the generic 500', (_label, error) => {
    expect(translateTusError(error, noHeaders, MAX)).toBeUndefined();
  });

  /** What ioredis raises when Redis is loading, read-only, gone, or a connection is in the wrong state. */
  const redisFailure = (message: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), extra);
  it.each([
    ['a ReplyError (Redis loading)', new (ReplyError as new (message: string) => Error)('LOADING Redis is loading the dataset in memory')],
    ['a ReplyError (replica)', new (ReplyError as new (message: string) => Error)("READONLY You can't write against a read only replica.")],
    ['a command on a subscriber connection', redisFailure('Connection in subscriber mode, only subscriber commands may be used')],
    ['a failed ready check', redisFailure('Ready check failed: Connection in subscriber mode, only subscriber commands may be used')],
    ['an aborted command', Object.assign(redisFailure('Command aborted due to connection close'), { name: 'AbortError', command: { name: 'set', args: [] } })],
    ['a command timeout', redisFailure('Command timed out')],
    ['retries exhausted', Object.assign(redisFailure('Reached the max retries per request limit (which is 3).'), { name: 'MaxRetriesPerRequestError' })],
    ['a Redis error as the cause', new Error('lock failed', { cause: redisFailure('Connection is closed.') })],
  ])('answers Redis trouble (%s) with a retryable 503, never a 500', (_label, error) => {
    const mapped = translateTusError(error, noHeaders, MAX);
    expect(mapped?.status).toBe(503);
    expect(mapped?.code).toBe('ERR_SERVICE_UNAVAILABLE');
    expect(mapped?.headers['Retry-After']).toBeDefined();
  });

  /** What the SDK raises for an S3 error answer (the shape recorded from Ceph RGW for a bucket past its quota). */
  const s3Failure = (name: string, status: number) =>
    Object.assign(new Error('UnknownError'), { name, Code: name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status, attempts: 1 } });
  it.each([
    ['ENOSPC from the file store (the real error, as the PATCH on a full tmpfs gave it)', Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' })],
    ['EDQUOT', Object.assign(new Error('EDQUOT: disk quota exceeded'), { code: 'EDQUOT' })],
    ['ENOSPC wrapped as a cause', new Error('could not queue processing', { cause: Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }) })],
    ['Ceph RGW QuotaExceeded (403)', s3Failure('QuotaExceeded', 403)],
    ['MinIO XMinioAdminBucketQuotaExceeded (400)', s3Failure('XMinioAdminBucketQuotaExceeded', 400)],
    ['MinIO XMinioStorageFull (507), not an outage', s3Failure('XMinioStorageFull', 507)],
  ])('answers a full storage (%s) with 507 ERR_STORAGE_FULL and Retry-After', (_label, error) => {
    const mapped = translateTusError(error, noHeaders, MAX);
    expect(mapped?.status).toBe(507);
    expect(mapped?.code).toBe('ERR_STORAGE_FULL');
    expect(mapped?.headers['Retry-After']).toBe('30');
    expect(mapped?.body).toMatch(/^ERR_STORAGE_FULL: /);
  });

  it('leaves an AbortError that is not from Redis (a client gone) to the generic handling', () => {
    expect(translateTusError(new DOMException('The operation was aborted.', 'AbortError'), noHeaders, MAX)).toBeUndefined();
  });
});
