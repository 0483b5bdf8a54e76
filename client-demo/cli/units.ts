/**
 * Sizes and durations for people: `--chunk-size 8MiB` in, `420 MiB` and `1:02:03` out.
 * The CLI is a client of any tus server, so it carries its own small parser instead of
 * importing the server's.
 */

const FACTORS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
};

/**
 * "8388608", "8MiB", "8 M" (binary: K, M, G and KiB, MiB, GiB) or "10MB" (decimal: KB, MB, GB)
 * into bytes; undefined for anything else, fractions of a byte included.
 */
export function parseByteSize(input: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(input.trim());
  if (!match) return undefined;
  const [, amount = '', unit = ''] = match;
  const factor = FACTORS[unit.toLowerCase()];
  if (factor === undefined) return undefined;
  const bytes = Number(amount) * factor;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** "512 B", "12.3 MiB", "420 MiB", "1.0 GiB": one decimal below 100, none above. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '? B';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} B`;
  // 1023.96 MiB would print as "1024.0 MiB": show it in the next unit instead.
  if (value >= 1023.95 && unit < UNITS.length - 1) return `1.0 ${UNITS[unit + 1]}`;
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ${UNITS[unit]}`;
}

/** "0:48", "12:05", "1:02:03"; "--:--" when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--:--';
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** "12.3 MiB/s"; "-- MiB/s" before there is a rate. */
export function formatRate(bytesPerSecond: number | undefined): string {
  if (bytesPerSecond === undefined || !Number.isFinite(bytesPerSecond)) return '-- MiB/s';
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** How long something took: "0.4 s", "42 s", then "2:05". */
export function formatElapsed(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  return formatDuration(seconds);
}
