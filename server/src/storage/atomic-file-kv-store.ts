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

  constructor(directory: string) {
    super(directory);
    this.tempDirectory = path.join(directory, '.tmp');
  }

  override async set(key: string, value: Upload): Promise<void> {
    const target = path.resolve(this.directory, `${key}.json`);
    if (!isPathInsideDirectory(this.directory, target)) throw ERRORS.FILE_NOT_FOUND;
    await fs.mkdir(this.tempDirectory, { recursive: true });
    await writeFileAtomically(target, JSON.stringify(value), this.tempDirectory);
  }
}
