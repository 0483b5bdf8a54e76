import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isServiceUnavailable, serviceUnavailable } from './errors.js';

describe('isServiceUnavailable', () => {
  it('recognises network failures, also inside a cause chain', () => {
    expect(isServiceUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7480'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isServiceUnavailable(new Error('request failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) }))).toBe(true);
  });

  it('recognises S3 answering 5xx and SDK timeouts', () => {
    expect(isServiceUnavailable(Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }))).toBe(true);
    expect(isServiceUnavailable(Object.assign(new Error('timed out'), { name: 'TimeoutError' }))).toBe(true);
  });

  it('recognises a real ioredis client that cannot reach its server', async () => {
    const redis = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 1, retryStrategy: (times) => (times > 1 ? null : 10) });
    redis.on('error', () => undefined);
    const failure = await redis.get('x').then(
      () => undefined,
      (error: unknown) => error,
    );
    redis.disconnect();
    expect(failure).toBeDefined();
    expect(isServiceUnavailable(failure)).toBe(true);
  });

  it('leaves bugs and client errors alone', () => {
    expect(isServiceUnavailable(new TypeError("Cannot read properties of undefined (reading 'size')"))).toBe(false);
    expect(isServiceUnavailable(Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }))).toBe(false);
    expect(isServiceUnavailable(undefined)).toBe(false);
  });

  it('answers 503 ERR_SERVICE_UNAVAILABLE with Retry-After', () => {
    const error = serviceUnavailable();
    expect(error.status).toBe(503);
    expect(error.body).toMatch(/^ERR_SERVICE_UNAVAILABLE: .+\n$/);
    expect(error.headers['Retry-After']).toBe('5');
  });
});
