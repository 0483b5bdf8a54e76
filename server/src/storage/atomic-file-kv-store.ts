import fs from 'node:fs/promises';
import path from 'node:path';
import { FileConfigstore } from '@tus/file-store';
import { ERRORS, isPathInsideDirectory, type Upload } from '@tus/utils';
import { writeFileAtomically } from '../shared/write-file-atomically.js';

/**
 * The file store's `<id>.json` records, written atomically: a process killed mid-write
 * must leave the old record or the new one, never half a JSON file that makes the
 * upload unreadable (and so unresumable) after a restart.
 */
export class AtomicFileKvStore extends FileConfigstore {
  private readonly tempDirectory: string;
  private tempReady: Promise<unknown> | undefined;

  constructor(directory: string) {
    super(directory);
    this.tempDirectory = path.join(directory, '.tmp');
  }

  override async set(key: string, value: Upload): Promise<void> {
    const target = path.resolve(this.directory, `${key}.json`);
    if (!isPathInsideDirectory(this.directory, target)) throw ERRORS.FILE_NOT_FOUND;
    const text = JSON.stringify(value);
    // The temporary directory is made once, not on every creation; made again if it vanished.
    this.tempReady ??= fs.mkdir(this.tempDirectory, { recursive: true });
    await this.tempReady;
    try {
      await writeFileAtomically(target, text, this.tempDirectory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await fs.mkdir(this.tempDirectory, { recursive: true });
      await writeFileAtomically(target, text, this.tempDirectory);
    }
  }
}
