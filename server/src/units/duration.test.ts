import { describe, expect, it } from 'vitest';
import { parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    [' 0 ', 0],
    ['500ms', 500],
    ['1s', 1000],
    ['30s', 30_000],
    ['90m', 5_400_000],
    ['24h', 86_400_000],
    ['1.5h', 5_400_000],
    ['2d', 172_800_000],
    ['1 hour', 3_600_000],
    ['10 minutes', 600_000],
  ])('%s → %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['', '30', '1.5', '00', 'soon', '-1h', '-5s', 'h', '1 fortnight', '1e400h'])('%j is refused', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });
});
