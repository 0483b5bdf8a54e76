import ms from 'ms';

/**
 * Parses a duration with a unit ("30s", "24h", "500ms", "1.5h") into milliseconds, or "0".
 * A bare number other than 0 is refused: "30" could mean seconds or milliseconds, and
 * guessing wrong turns a 30 s timeout into a 30 ms one.
 */
export function parseDuration(input: string): number | undefined {
  const value = input.trim();
  if (value === '0') return 0;
  if (/^\d+(\.\d+)?$/.test(value)) return undefined;
  let parsed: number;
  try {
    parsed = ms(value as ms.StringValue);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0 || !Number.isSafeInteger(Math.round(parsed))) {
    return undefined;
  }
  return Math.round(parsed);
}
