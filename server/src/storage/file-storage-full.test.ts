import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ERRORS, Upload } from '@tus/utils';
import { afterEach, describe, expect, it } from 'vitest';
import { createFileStorage } from './file-storage.js';
import { isStorageFull } from './storage-errors.js';

// /dev/full fails every write with ENOSPC, exactly as a full file system does: the data file
// of an upload pointed at it is a full disk without mounting one (e2e/storage-full.test.ts mounts one).
const DEV_FULL = '/dev/full';
const hasDevFull = await fs.access(DEV_FULL).then(() => true, () => false);

describe.skipIf(!hasDevFull)('file storage on a full disk', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("rejects a write with the disk's own ENOSPC (a 507 for the client), not @tus/file-store's FILE_WRITE_ERROR (a 503)", async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-file-full-'));
    const storage = await createFileStorage({ directory: dir, uploadExpiryMs: 0 });
    const id = 'f0f0f0f0f0f0f0f0';
    await storage.datastore.create(new Upload({ id, size: 1024, offset: 0 }));
    await fs.rm(path.join(dir, id));
    await fs.symlink(DEV_FULL, path.join(dir, id));

    const error = await storage.datastore.write(Readable.from([Buffer.alloc(1024)]), id, 0).then(() => undefined, (e: unknown) => e);
    expect(error).not.toBe(ERRORS.FILE_WRITE_ERROR);
    expect(isStorageFull(error)).toBe(true);
  });

  it('leaves other write failures as FILE_WRITE_ERROR', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-file-full-'));
    const storage = await createFileStorage({ directory: dir, uploadExpiryMs: 0 });
    const id = 'e0e0e0e0e0e0e0e0';
    await storage.datastore.create(new Upload({ id, size: 1024, offset: 0 }));
    // A data file that is a directory: the write fails, and not for want of space.
    await fs.rm(path.join(dir, id));
    await fs.mkdir(path.join(dir, id));

    const error = await storage.datastore.write(Readable.from([Buffer.alloc(1024)]), id, 0).then(() => undefined, (e: unknown) => e);
    expect(error).toBe(ERRORS.FILE_WRITE_ERROR);
  });
});
