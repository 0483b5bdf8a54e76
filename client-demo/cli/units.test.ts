import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatElapsed, formatRate, parseByteSize } from './units.js';

describe('parseByteSize', () => {
  it.each([
    ['1048576', 1048576],
    ['8MiB', 8 * 1024 ** 2],
    ['8 MiB', 8 * 1024 ** 2],
    ['8m', 8 * 1024 ** 2],
    ['512KiB', 512 * 1024],
    ['512k', 512 * 1024],
    ['1GiB', 1024 ** 3],
    ['1.5MiB', 1.5 * 1024 ** 2],
    ['10MB', 10_000_000],
    ['5kb', 5_000],
    ['2GB', 2e9],
    ['12B', 12],
  ])('%s → %d', (input, bytes) => {
    expect(parseByteSize(input)).toBe(bytes);
  });

  it.each(['', 'abc', '-1', '8 XiB', '1.5', '0.1KiB', '1e6', '8MiB extra', '99999999999999999999'])('%j is refused', (input) => {
    expect(parseByteSize(input)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1024, '1.0 KiB'],
    [12.3 * 1024 ** 2, '12.3 MiB'],
    [420 * 1024 ** 2, '420 MiB'],
    [1024 ** 3, '1.0 GiB'],
    [1024 ** 3 - 1, '1.0 GiB'],
    [2.5 * 1024 ** 3, '2.5 GiB'],
  ])('%d → %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0:00'],
    [48, '0:48'],
    [59.6, '1:00'],
    [725, '12:05'],
    [3723, '1:02:03'],
    [undefined, '--:--'],
    [Number.POSITIVE_INFINITY, '--:--'],
    [-1, '--:--'],
  ])('%s → %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('formatElapsed', () => {
  it.each([
    [0.42, '0.4 s'],
    [8.44, '8.4 s'],
    [42.4, '42 s'],
    [125, '2:05'],
  ])('%s → %s', (seconds, text) => {
    expect(formatElapsed(seconds)).toBe(text);
  });
});

describe('formatRate', () => {
  it('shows a rate per second, or dashes before there is one', () => {
    expect(formatRate(12.3 * 1024 ** 2)).toBe('12.3 MiB/s');
    expect(formatRate(undefined)).toBe('-- MiB/s');
  });
});
