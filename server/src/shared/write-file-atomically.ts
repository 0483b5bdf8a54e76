import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a file so that a process killed mid-write leaves the old content or the new one,
 * never half of it: the data goes to a unique name in `tempDirectory` (on the same file
 * system) and is renamed over `target`.
 */
export async function writeFileAtomically(target: string, data: string | Uint8Array, tempDirectory: string): Promise<void> {
  const temp = path.join(tempDirectory, `${path.basename(target)}.${randomBytes(6).toString('hex')}`);
  try {
    await fs.writeFile(temp, data);
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}
