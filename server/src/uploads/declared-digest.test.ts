import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { declaredSha256, parseReprDigest, parseSha256Metadata } from './declared-digest.js';

const digest = createHash('sha256').update('hello world').digest();
const B64 = digest.toString('base64');
const HEX = digest.toString('hex');
const SHA512 = createHash('sha512').update('hello world').digest('base64');

/** The error's `CODE: message` body, or the value when it is not an error. */
const outcome = (value: string | HttpError | undefined) => (value instanceof HttpError ? `${value.status} ${value.body.trim()}` : value);

describe('parseReprDigest (RFC 9530 Repr-Digest)', () => {
  it('reads sha-256 from a one-member dictionary', () => {
    expect(parseReprDigest(`sha-256=:${B64}:`)).toBe(B64);
  });

  it('picks sha-256 among other algorithms and ignores them, whatever their order and spacing', () => {
    expect(parseReprDigest(`sha-512=:${SHA512}:, sha-256=:${B64}:`)).toBe(B64);
    expect(parseReprDigest(`sha-256=:${B64}:,sha-512=:${SHA512}:`)).toBe(B64);
    expect(parseReprDigest(`  sha-512=:${SHA512}:  ,\tsha-256=:${B64}:  `)).toBe(B64);
  });

  it('parses members of other kinds beside it (tokens, strings, numbers, inner lists, parameters)', () => {
    expect(parseReprDigest(`unixsum=30637, x-foo="a, \\"b\\"", x-bar=(1 2.5 tok ?1);q=1, x-flag, sha-256=:${B64}:;note=x`)).toBe(B64);
  });

  it('accepts sha-256 without base64 padding, as structured fields ask', () => {
    expect(parseReprDigest(`sha-256=:${B64.replace(/=+$/, '')}:`)).toBe(B64);
  });

  it('the last of duplicate keys wins', () => {
    const other = createHash('sha256').update('other').digest('base64');
    expect(parseReprDigest(`sha-256=:${other}:, sha-256=:${B64}:`)).toBe(B64);
  });

  it('declares nothing without the header or without sha-256 in it', () => {
    expect(parseReprDigest(null)).toBeUndefined();
    expect(parseReprDigest(`sha-512=:${SHA512}:`)).toBeUndefined();
  });

  it.each([
    ['not a dictionary', 'sha-256'.toUpperCase()],
    ['empty', ''],
    ['unclosed byte sequence', `sha-256=:${B64}`],
    ['trailing comma', `sha-256=:${B64}:,`],
    ['garbage after the value', `sha-256=:${B64}: junk`],
    ['bad string', `x="unclosed, sha-256=:${B64}:`],
  ])('answers 400 ERR_INVALID_DIGEST for a malformed header (%s)', (_why, header) => {
    expect(outcome(parseReprDigest(header))).toMatch(/^400 ERR_INVALID_DIGEST: Repr-Digest is not a structured-field dictionary/);
  });

  it('answers 400 when sha-256 is not a byte sequence, or not 32 bytes of canonical base64', () => {
    expect(outcome(parseReprDigest(`sha-256="${B64}"`))).toBe('400 ERR_INVALID_DIGEST: the sha-256 value of Repr-Digest must be a byte sequence, ":<base64>:"');
    expect(outcome(parseReprDigest(`sha-256=:${SHA512}:`))).toBe('400 ERR_INVALID_DIGEST: the sha-256 value of Repr-Digest must be the base64 of 32 bytes');
    expect(outcome(parseReprDigest('sha-256=:AAAA:'))).toMatch(/^400 ERR_INVALID_DIGEST: .*32 bytes$/);
    // The same 32 bytes with non-zero bits past the end ('k' → 'l' sets a padding bit): two spellings of one digest are refused.
    const sloppy = `${B64.slice(0, 42)}l=`;
    expect(B64[42]).toBe('k');
    expect(Buffer.from(sloppy, 'base64').equals(digest)).toBe(true);
    expect(outcome(parseReprDigest(`sha-256=:${sloppy}:`))).toMatch(/^400 ERR_INVALID_DIGEST: .*32 bytes$/);
  });
});

describe('parseSha256Metadata', () => {
  it('takes 64 hex digits in either case, or 44 characters of base64', () => {
    expect(parseSha256Metadata(HEX)).toBe(B64);
    expect(parseSha256Metadata(HEX.toUpperCase())).toBe(B64);
    expect(parseSha256Metadata(B64)).toBe(B64);
  });

  it.each([
    ['a key without value', null],
    ['too short hex', HEX.slice(2)],
    ['hex with a non-hex digit', `${HEX.slice(1)}g`],
    ['base64 without padding', B64.replace(/=+$/, '')],
    ['base64 of 64 bytes', SHA512],
    ['text', 'not a digest'],
  ])('answers 400 ERR_INVALID_DIGEST for %s', (_why, value) => {
    expect(outcome(parseSha256Metadata(value))).toMatch(/^400 ERR_INVALID_DIGEST: the metadata value sha256 must be a sha-256 as 64 hexadecimal digits or 44 characters of base64$/);
  });

  it('refuses a binary value (raw bytes are not one of the two spellings)', () => {
    expect(outcome(parseSha256Metadata(B64, true))).toMatch(/^400 ERR_INVALID_DIGEST: /);
  });
});

describe('declaredSha256', () => {
  const none = { metadata: {}, binaryKeys: [] };

  it('comes from the header, the metadata, or both when they agree', () => {
    expect(declaredSha256(null, none)).toBeUndefined();
    expect(declaredSha256(`sha-256=:${B64}:`, none)).toBe(B64);
    expect(declaredSha256(null, { metadata: { sha256: HEX, filename: 'a' }, binaryKeys: [] })).toBe(B64);
    expect(declaredSha256(`sha-256=:${B64}:`, { metadata: { sha256: HEX }, binaryKeys: [] })).toBe(B64);
  });

  it('answers 400 naming both when the header and the metadata disagree', () => {
    const other = createHash('sha256').update('other').digest();
    const result = declaredSha256(`sha-256=:${B64}:`, { metadata: { sha256: other.toString('hex') }, binaryKeys: [] });
    expect(outcome(result)).toBe(`400 ERR_INVALID_DIGEST: Repr-Digest declares sha-256 :${B64}: but the metadata sha256 declares :${other.toString('base64')}:`);
  });

  it('a malformed part fails the whole declaration', () => {
    expect(outcome(declaredSha256('sha-256=:x', { metadata: { sha256: HEX }, binaryKeys: [] }))).toMatch(/^400 ERR_INVALID_DIGEST: Repr-Digest/);
    expect(outcome(declaredSha256(`sha-256=:${B64}:`, { metadata: { sha256: 'nope' }, binaryKeys: [] }))).toMatch(/^400 ERR_INVALID_DIGEST: the metadata value sha256/);
    expect(outcome(declaredSha256(null, { metadata: { sha256: null }, binaryKeys: [] }))).toMatch(/^400 ERR_INVALID_DIGEST: /);
  });
});
