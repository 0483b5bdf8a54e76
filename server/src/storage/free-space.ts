import fs from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../units/byte-size.js';
import { storageFull } from './storage-errors.js';

/** How long one measurement stands: a POST storm costs one statfs per interval, not one each. */
export const FREE_SPACE_CACHE_MS = 1_000;

type StatFs = (directory: string) => Promise<{ bavail: number; bsize: number }>;

export type FreeSpaceOptions = Readonly<{
  /** Where new uploads' bytes land: STORAGE_DIR, or the part buffers' directory with S3. */
  directory: string;
  /** Below this many free bytes, no new upload starts; 0 turns the check off. */
  minimumBytes: number;
  /** @default FREE_SPACE_CACHE_MS */
  cacheMs?: number;
  /** @default fs.statfs */
  statfs?: StatFs;
  /** @default Date.now */
  now?: () => number;
}>;

export type FreeSpace = Readonly<{
  minimumBytes: number;
  /** Bytes this process may still write there (statfs' bavail: root's reserve excluded), or undefined if it cannot be measured. */
  available(): Promise<number | undefined>;
  /** Whether free space is below the minimum (never, when the minimum is 0 or nothing can be measured). */
  isLow(): Promise<boolean>;
  /** Throws 507 ERR_STORAGE_FULL when free space is below the minimum: what a new upload hears. */
  refuseNewUploadIfLow(): Promise<void>;
}>;

/**
 * Free space under the storage directory, measured with statfs and kept for a second: new
 * uploads stop while there is still room for the ones in progress to finish. A directory not
 * made yet (S3's part buffers before the first part) is measured at its nearest parent.
 */
export function createFreeSpace({ directory, minimumBytes, cacheMs = FREE_SPACE_CACHE_MS, statfs = fs.statfs, now = Date.now }: FreeSpaceOptions): FreeSpace {
  let measured: { at: number; bytes: Promise<number | undefined> } | undefined;

  async function measure(): Promise<number | undefined> {
    for (let dir = directory, depth = 0; depth < 32; depth += 1) {
      try {
        const stats = await statfs(dir);
        return stats.bavail * stats.bsize;
      } catch (error) {
        const parent = path.dirname(dir);
        if ((error as { code?: unknown }).code !== 'ENOENT' || parent === dir) return undefined;
        dir = parent;
      }
    }
    return undefined;
  }

  function available(): Promise<number | undefined> {
    const at = now();
    // Callers within the interval share one measurement, the one in flight included.
    if (!measured || at - measured.at >= cacheMs || at < measured.at) measured = { at, bytes: measure() };
    return measured.bytes;
  }

  async function isLow(): Promise<boolean> {
    if (minimumBytes <= 0) return false;
    const bytes = await available();
    return bytes !== undefined && bytes < minimumBytes;
  }

  return {
    minimumBytes,
    available,
    isLow,
    async refuseNewUploadIfLow() {
      if (!(await isLow())) return;
      throw storageFull(`the server is low on storage (less than MIN_FREE_SPACE, ${formatBytes(minimumBytes)}, free) and takes no new uploads; uploads in progress may finish; retry later`);
    },
  };
}
