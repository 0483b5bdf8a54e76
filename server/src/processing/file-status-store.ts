import fs from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomically } from '../shared/write-file-atomically.js';
import type { RecordObjects } from '../storage/index.js';
import { createRecordStatusStore } from './record-status-store.js';
import type { StatusStore } from './status-store.js';

/** Status records as JSON files (`<dir>/<id>.json`), replaced atomically (written in `.tmp`, then renamed). */
export function createFileStatusStore(directory: string): StatusStore {
  return createRecordStatusStore(fileRecords(directory));
}

/** `<dir>/<id>.json` files as RecordObjects. */
export function fileRecords(directory: string): RecordObjects {
  const file = (id: string) => path.join(directory, `${id}.json`);
  let made: Promise<unknown> | undefined;
  const ensureDir = () => (made ??= fs.mkdir(path.join(directory, '.tmp'), { recursive: true }));
  return {
    async read(id: string): Promise<string | undefined> {
      try {
        return await fs.readFile(file(id), 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    async write(id: string, text: string): Promise<void> {
      await ensureDir();
      await writeFileAtomically(file(id), text, path.join(directory, '.tmp'));
    },
    remove: (id: string) => fs.rm(file(id), { force: true }),
  };
}
