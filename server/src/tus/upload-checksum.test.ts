import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { CHECKSUM_ALGORITHMS, TUS_CHECKSUM_ALGORITHM } from './checksum-algorithms.js';
import { announcesChecksumTrailer, parseUploadChecksum } from './upload-checksum.js';

const digestOf = (algorithm: string, data: string) => createHash(algorithm).update(data).digest();

describe('parseUploadChecksum', () => {
  it('reads every supported algorithm, with or without base64 padding', () => {
    for (const algorithm of CHECKSUM_ALGORITHMS) {
      const digest = digestOf(algorithm, 'hello world');
      const padded = digest.toString('base64');
      for (const encoded of [padded, padded.replace(/=+$/, '')]) {
        const parsed = parseUploadChecksum(`${algorithm} ${encoded}`);
        expect(parsed).not.toBeInstanceOf(HttpError);
        expect(parsed).toEqual({ algorithm, digest });
      }
    }
  });

  it('takes the example of the spec', () => {
    expect(parseUploadChecksum('sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=')).toEqual({ algorithm: 'sha1', digest: digestOf('sha1', 'hello world') });
  });

  const sha1 = digestOf('sha1', 'x').toString('base64');
  it.each([
    ['no space', `sha1${sha1}`, 'ERR_INVALID_CHECKSUM'],
    ['only an algorithm', 'sha1', 'ERR_INVALID_CHECKSUM'],
    ['nothing', '', 'ERR_INVALID_CHECKSUM'],
    ['two spaces', `sha1  ${sha1}`, 'ERR_INVALID_CHECKSUM'],
    ['three fields', `sha1 ${sha1} extra`, 'ERR_INVALID_CHECKSUM'],
    ['characters outside base64', 'sha1 Kq5sNclPz7QV2+lfQIuc6R7o!u0=', 'ERR_INVALID_CHECKSUM'],
    ['base64url', 'sha1 Kq5sNclPz7QV2-lfQIuc6R7oRu0', 'ERR_INVALID_CHECKSUM'],
    ['a digest one byte short', `sha1 ${digestOf('sha1', 'x').subarray(1).toString('base64')}`, 'ERR_INVALID_CHECKSUM'],
    ['an md5 digest named sha256', `sha256 ${digestOf('md5', 'x').toString('base64')}`, 'ERR_INVALID_CHECKSUM'],
    ['an unknown algorithm', `crc32 ${Buffer.alloc(4).toString('base64')}`, 'ERR_UNSUPPORTED_CHECKSUM_ALGORITHM'],
    ['an upper-case name', `SHA1 ${sha1}`, 'ERR_UNSUPPORTED_CHECKSUM_ALGORITHM'],
    ['an inherited property name', `constructor ${sha1}`, 'ERR_UNSUPPORTED_CHECKSUM_ALGORITHM'],
  ])('refuses %s with 400', (_label, value, code) => {
    const parsed = parseUploadChecksum(value);
    expect(parsed).toBeInstanceOf(HttpError);
    const error = parsed as HttpError;
    expect(error.status).toBe(400);
    expect(error.code).toBe(code);
    expect(error.body).toMatch(/^ERR_[A-Z_]+: [^\n]+\n$/);
  });

  it('names the algorithms it has when it refuses one', () => {
    expect((parseUploadChecksum(`crc32c ${sha1}`) as HttpError).message).toContain('md5, sha1, sha256, sha512');
  });
});

describe('announcesChecksumTrailer', () => {
  it('finds Upload-Checksum in the Trailer list, in any case', () => {
    expect(announcesChecksumTrailer(new Headers({ Trailer: 'Upload-Checksum' }))).toBe(true);
    expect(announcesChecksumTrailer(new Headers({ Trailer: 'x-foo, upload-checksum' }))).toBe(true);
    expect(announcesChecksumTrailer(new Headers({ Trailer: 'Upload-Checksums' }))).toBe(false);
    expect(announcesChecksumTrailer(new Headers())).toBe(false);
  });
});

it('advertises md5, sha1, sha256 and sha512', () => {
  expect(TUS_CHECKSUM_ALGORITHM).toBe('md5,sha1,sha256,sha512');
});
