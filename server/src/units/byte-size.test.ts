import { describe, expect, it } from 'vitest';
import { formatBytes, parseByteSize } from './byte-size.js';

describe('parseByteSize', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['2147483648', 2147483648],
    ['2GiB', 2147483648],
    ['2gib', 2147483648],
    ['2 GiB', 2147483648],
    ['  2GiB  ', 2147483648],
    ['500MB', 500_000_000],
    ['500 mb', 500_000_000],
    ['1KB', 1000],
    ['1KiB', 1024],
    ['3MiB', 3 * 1024 ** 2],
    ['1TiB', 1024 ** 4],
    ['1TB', 1e12],
    ['12B', 12],
    ['1.5KiB', 1536],
    ['0.5GB', 500_000_000],
  ])('%s → %d', (input, bytes) => {
    expect(parseByteSize(input)).toBe(bytes);
  });

  it.each([
    '',
    'abc',
    '-1',
    '-1MB',
    '1.5',
    '0.1KiB',
    '2XB',
    '2 G i B',
    'GiB',
    '1e3',
    '0x10',
    '1,000',
    '2GiB extra',
    '99999999999999999999',
    '9007199254740993',
    '9999999TiB',
  ])('%j is refused', (input) => {
    expect(parseByteSize(input)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 bytes'],
    [1, '1 byte'],
    [512, '512 bytes'],
    [1023, '1023 bytes'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [10 * 1024 + 512, '10.5 KiB'],
    [2 * 1024 ** 3, '2 GiB'],
    [2.4 * 1024 ** 3, '2.4 GiB'],
    [500_000_000, '477 MiB'],
    [1024 ** 5, '1 PiB'],
    [1024 ** 6, '1024 PiB'],
  ])('%d → %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('passes non-finite numbers through', () => {
    expect(formatBytes(Infinity)).toBe('Infinity');
    expect(formatBytes(NaN)).toBe('NaN');
  });
});
