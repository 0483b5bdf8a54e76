import { describe, expect, it } from 'vitest';
import { isValidUploadId, uploadIdFromSegment } from './upload-id.js';

describe('upload ids', () => {
  it('accepts the ids @tus/server makes, and a safe wider alphabet', () => {
    expect(isValidUploadId('0123456789abcdef0123456789abcdef')).toBe(true);
    expect(isValidUploadId('My_Upload-1')).toBe(true);
    expect(isValidUploadId('a'.repeat(128))).toBe(true);
  });

  it.each(['', '..', '.', 'a/b', 'a\\b', 'a.b', 'a b', 'a\u0000b', 'a\nb', 'é', 'a'.repeat(129)])('refuses %j', (id) => {
    expect(isValidUploadId(id)).toBe(false);
  });

  it('decodes one path segment', () => {
    expect(uploadIdFromSegment('abc')).toBe('abc');
    expect(uploadIdFromSegment('ab%63')).toBe('abc');
  });

  it.each(['..%2f..%2fetc%2fpasswd', '%2e%2e%2f', '%2e%2e', 'abc%00def', '%E0%A4%A', '%', 'a%2Fb', 'x'.repeat(10_000)])('refuses segment %j', (segment) => {
    expect(uploadIdFromSegment(segment)).toBeUndefined();
  });
});
