import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { parseConcatHeader } from './concat-header.js';

const context = { tusPath: '/files', hosts: ['uploads.example.com', 'localhost:8080'] };
const parse = (value: string) => parseConcatHeader(value, context);

describe('parseConcatHeader', () => {
  it('reads partial, and final with paths and absolute URLs of this server, in order', () => {
    expect(parse('partial')).toEqual({ kind: 'partial' });
    expect(parse('final;/files/a https://uploads.example.com/files/b   http://localhost:8080/files/c')).toEqual({ kind: 'final', parts: ['a', 'b', 'c'] });
    // Host names are case-insensitive; the id is decoded once, as in any upload URL.
    expect(parse('final;https://UPLOADS.example.com/files/%61b')).toEqual({ kind: 'final', parts: ['ab'] });
  });

  it.each([
    ['final;a', /relative URL/],
    ['final;./files/a', /relative URL/],
    ['final;//uploads.example.com/files/a', /relative URL/],
    ['final;https://evil.example/files/a', /another server/],
    ['final;https://uploads.example.com:9999/files/a', /another server/],
    ['final;https://uploads.example.com/files/a?x=1', /not an upload URL/],
    ['final;https://uploads.example.com/other/a', /not an upload URL/],
    ['final;/files/a/../b', /not an upload URL/],
    ['final;/files/%2e%2e', /not an upload URL/],
    ['final;/files/', /not an upload URL/],
    ['final;/files/a /files/a', /named twice/],
    ['final;https://uploads.example.com/files/a /files/a', /named twice/],
    ['final;', /names no partial uploads/],
    ['partial; final', /must be "partial" or "final;/],
  ])('refuses %j with a 400 that says why', (value, message) => {
    const result = parse(value);
    expect(result).toBeInstanceOf(HttpError);
    expect((result as HttpError).code).toBe('ERR_INVALID_CONCAT');
    expect((result as HttpError).message).toMatch(message);
  });

  it('refuses more than 1,000 partial uploads', () => {
    const many = Array.from({ length: 1_001 }, (_, i) => `/files/p${i}`).join(' ');
    expect((parse(`final;${many}`) as HttpError).message).toMatch(/at most 1000/);
  });
});
