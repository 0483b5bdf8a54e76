import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** This process's mark in temporary names (random, so instances sharing a directory never collide), then a counter. */
const PROCESS_MARK = randomBytes(6).toString('hex');
let written = 0;

/** A name no other write, in this process or another, uses: without a call to the random source per write. */
export function uniqueTempName(base: string): string {
  written += 1;
  return `${base}.${PROCESS_MARK}${written.toString(36)}`;
}

/**
 * Writes a file so that a process killed mid-write leaves the old content or the new one,
 * never half of it: the data goes to a unique name in `tempDirectory` (on the same file
 * system) and is renamed over `target`.
 */
export async function writeFileAtomically(target: string, data: string | Uint8Array, tempDirectory: string): Promise<void> {
  const temp = path.join(tempDirectory, uniqueTempName(path.basename(target)));
  try {
    await fs.writeFile(temp, data);
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}
