/** Sizes, rounding and order statistics shared by the benchmark's files. */
export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kib|mib|gib|kb|mb|gb|k|m|g)?\s*$/i.exec(text);
  if (!match) throw new Error(`not a size: "${text}" (expected e.g. 1GiB, 256MiB, 8388608)`);
  const units: Record<string, number> = { b: 1, k: 1024, kib: 1024, m: MiB, mib: MiB, g: GiB, gib: GiB, kb: 1e3, mb: 1e6, gb: 1e9 };
  const bytes = Math.round(Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`size out of range: "${text}"`);
  return bytes;
}

export function formatSize(bytes: number): string {
  if (bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

export const toMiB = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
export const round1 = (n: number) => Math.round(n * 10) / 10;
export const round2 = (n: number) => Math.round(n * 100) / 100;
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The p-th percentile (0..100), nearest rank; NaN when there are no samples. */
export function percentile(xs: ArrayLike<number>, p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
