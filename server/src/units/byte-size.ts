const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/**
 * Parses "2147483648", "2GiB" or "500 MB" into bytes. Returns undefined for anything
 * else, including fractions of a byte and sizes past Number.MAX_SAFE_INTEGER, so a
 * typo never silently becomes a different limit.
 */
export function parseByteSize(input: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(input.trim());
  if (!match) return undefined;
  const [, amount = '', unit = ''] = match;
  const factor = unit === '' ? 1 : UNITS[unit.toLowerCase()];
  if (factor === undefined) return undefined;
  const bytes = Number(amount) * factor;
  if (!Number.isSafeInteger(bytes)) return undefined;
  return bytes;
}

const BINARY_UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** "2 GiB", "2.4 GiB", "512 bytes": for messages people read. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`;
  const rounded = value >= 100 ? Math.round(value).toString() : Number(value.toFixed(value >= 10 ? 1 : 2)).toString();
  return `${rounded} ${BINARY_UNITS[unit]}`;
}
