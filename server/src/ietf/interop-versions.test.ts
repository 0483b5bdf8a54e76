import { describe, expect, it } from 'vitest';
import { readCompleteness, readOffset, readUploadLength, dispositionFilename } from './ietf-request.js';
import { INTEROP_VERSIONS, SERVED_VERSIONS, versionRules } from './interop-versions.js';
import { formatIntegerDictionary, parseBoolean, parseInteger } from './structured-fields.js';

describe('interop versions', () => {
  it('serves 3 to 8 and nothing else', () => {
    expect(SERVED_VERSIONS).toEqual([3, 4, 5, 6, 7, 8]);
    for (const version of SERVED_VERSIONS) expect(versionRules(String(version))?.version).toBe(version);
    for (const header of ['', '1', '2', '9', '10', '05', '5.0', '+5', 'five', '5, 6']) expect(versionRules(header)).toBeUndefined();
    expect(versionRules(' 6 ')?.version).toBe(6);
  });

  it('says what differs per version as the drafts do', () => {
    expect(INTEROP_VERSIONS[3].completeness).toBe('Upload-Incomplete');
    for (const version of [4, 5, 6, 7, 8] as const) expect(INTEROP_VERSIONS[version].completeness).toBe('Upload-Complete');
    for (const version of [3, 4, 5] as const) {
      expect(INTEROP_VERSIONS[version].appendContentType).toBeUndefined();
      expect(INTEROP_VERSIONS[version].limits).toBeUndefined();
      expect(INTEROP_VERSIONS[version].problemTypes).toEqual([]);
    }
    for (const version of [6, 7, 8] as const) expect(INTEROP_VERSIONS[version].appendContentType).toBe('application/partial-upload');
    expect(INTEROP_VERSIONS[6].limits?.lifetimeKey).toBe('expires');
    expect(INTEROP_VERSIONS[7].limits?.lifetimeKey).toBe('max-age');
    expect(INTEROP_VERSIONS[6].problemTypes).not.toContain('inconsistent-upload-length');
    expect(INTEROP_VERSIONS[7].problemTypes).toContain('inconsistent-upload-length');
    expect([6, 7, 8].map((version) => INTEROP_VERSIONS[version as 6 | 7 | 8].acceptPatch)).toEqual([false, false, true]);
  });
});

describe('structured fields', () => {
  it('parses booleans strictly, ignoring parameters', () => {
    expect(parseBoolean('?1')).toBe(true);
    expect(parseBoolean(' ?0 ')).toBe(false);
    expect(parseBoolean('?1;foo=bar')).toBe(true);
    for (const value of ['', '1', 'true', '?', '?2', '?1, ?0', '?1;']) expect(parseBoolean(value)).toBeUndefined();
  });

  it('parses integers of at most fifteen digits', () => {
    expect(parseInteger('0')).toBe(0);
    expect(parseInteger('42')).toBe(42);
    expect(parseInteger('-1')).toBe(-1);
    expect(parseInteger('999999999999999')).toBe(999_999_999_999_999);
    for (const value of ['', '1.5', '+1', '0x10', '1e3', '1000000000000000', 'NaN']) expect(parseInteger(value)).toBeUndefined();
  });

  it('writes Upload-Limit as a dictionary of integers', () => {
    expect(formatIntegerDictionary({ 'max-size': 2_147_483_648, 'max-age': 3599.7, expires: undefined })).toBe('max-size=2147483648, max-age=3599');
  });
});

describe('IETF request headers', () => {
  const headers = (init: Record<string, string>) => new Headers(init);

  it('reads completeness per version: Upload-Incomplete in version 3, Upload-Complete after', () => {
    expect(readCompleteness(INTEROP_VERSIONS[3], headers({ 'Upload-Incomplete': '?1' }))).toBe(false);
    expect(readCompleteness(INTEROP_VERSIONS[3], headers({ 'Upload-Incomplete': '?0' }))).toBe(true);
    // Version 3 does not read the later header, nor the later versions the older one.
    expect(readCompleteness(INTEROP_VERSIONS[3], headers({ 'Upload-Complete': '?1' }))).toBeUndefined();
    expect(readCompleteness(INTEROP_VERSIONS[6], headers({ 'Upload-Incomplete': '?0' }))).toBeUndefined();
    expect(readCompleteness(INTEROP_VERSIONS[6], headers({ 'Upload-Complete': '?1' }))).toBe(true);
    expect(readCompleteness(INTEROP_VERSIONS[8], headers({ 'Upload-Complete': 'yes' }))).toBeInstanceOf(Error);
  });

  it('reads offsets and lengths as non-negative integers within the limit', () => {
    expect(readOffset(headers({ 'Upload-Offset': '7' }))).toBe(7);
    expect(readOffset(headers({}))).toBeUndefined();
    expect(readOffset(headers({ 'Upload-Offset': '-7' }))).toBeInstanceOf(Error);
    expect(readOffset(headers({ 'Upload-Offset': '12345678901234567890' }))).toBeInstanceOf(Error);
    expect(readUploadLength(headers({ 'Upload-Length': '100' }), 100)).toBe(100);
    expect((readUploadLength(headers({ 'Upload-Length': '101' }), 100) as { status: number }).status).toBe(413);
    expect((readUploadLength(headers({ 'Upload-Length': 'x' }), 100) as { status: number }).status).toBe(400);
  });

  it('takes a file name from Content-Disposition', () => {
    expect(dispositionFilename(headers({ 'Content-Disposition': 'inline; filename="a b.jpg"' }))).toBe('a b.jpg');
    expect(dispositionFilename(headers({ 'Content-Disposition': "inline; filename=x.jpg; filename*=UTF-8''%C3%A9t%C3%A9.jpg" }))).toBe('été.jpg');
    expect(dispositionFilename(headers({ 'Content-Disposition': 'inline' }))).toBeUndefined();
  });
});
