import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { ERRORS, Upload } from '@tus/utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { fileExists } from '../testing/http-test-helpers.js';
import { AtomicFileKvStore } from './atomic-file-kv-store.js';
import { createFileStorage } from './file-storage.js';
import type { UploadStorage } from './types.js';

const HOUR = 3_600_000;

let dir: string;
let storage: UploadStorage;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-storage-'));
  storage = await createFileStorage({ directory: dir, uploadExpiryMs: 24 * HOUR });
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function createWith(id: string, size: number | undefined, content = ''): Promise<void> {
  await storage.datastore.create(new Upload({ id, size, offset: 0, metadata: { filename: `${id}.bin` } }));
  if (content) await storage.datastore.write(Readable.from([Buffer.from(content)]), id, 0);
}

describe('createFileStorage', () => {
  it('is file storage with the tus extensions we announce', () => {
    expect(storage.kind).toBe('file');
    for (const extension of ['creation', 'creation-with-upload', 'creation-defer-length', 'termination', 'expiration']) {
      expect(storage.datastore.hasExtension(extension)).toBe(true);
    }
    expect(storage.datastore.hasExtension('concatentation')).toBe(false);
    expect(storage.datastore.getExpiration()).toBe(24 * HOUR);
  });

  it('creates the directory and its tombstone folder', async () => {
    const nested = path.join(dir, 'a', 'b');
    await createFileStorage({ directory: nested, uploadExpiryMs: 0 });
    expect((await fs.stat(path.join(nested, '.expired'))).isDirectory()).toBe(true);
  });
});

describe('getUpload', () => {
  it('creates an upload without making its directory again, and again if it vanished', async () => {
    await createWith('a', 3, 'abc');
    await fs.rm(dir, { recursive: true, force: true });
    await createWith('b', 3, 'xyz');
    expect((await storage.getUpload('b')).offset).toBe(3);
  });

  it('marks an upload settled with a link to its record (no file of its own), never a removed one, and drops the mark with it', async () => {
    await createWith('a', 3, 'abc');
    await storage.markSettled('a');
    await storage.markSettled('a'); // idempotent
    const [marker, record] = await Promise.all([fs.stat(path.join(dir, '.settled', 'a')), fs.stat(path.join(dir, 'a.json'))]);
    expect(marker.ino).toBe(record.ino);
    expect(await storage.isSettled('a')).toBe(true);
    await storage.datastore.remove('a');
    expect(await storage.isSettled('a')).toBe(false);
    await storage.markSettled('a');
    expect(await storage.isSettled('a')).toBe(false);
    // The markers' directory gone (made at startup): made again.
    await createWith('b', 3, 'abc');
    await fs.rm(path.join(dir, '.settled'), { recursive: true });
    await storage.markSettled('b');
    expect(await storage.isSettled('b')).toBe(true);
  });

  it('reports offset from the bytes on disk, size and metadata', async () => {
    await createWith('u1', 10, 'abc');
    const upload = await storage.getUpload('u1');
    expect(upload.offset).toBe(3);
    expect(upload.size).toBe(10);
    expect(upload.metadata).toEqual({ filename: 'u1.bin' });
    expect(upload.creation_date).toBeTruthy();
  });

  it('hides the creation date of a finished upload from @tus/server, so it never looks expired; the server keeps it', async () => {
    await createWith('done', 3, 'abc');
    expect((await storage.datastore.getUpload('done')).creation_date).toBeUndefined();
    // The record on disk keeps it, and so does what hooks and processing read.
    const record = JSON.parse(await fs.readFile(path.join(dir, 'done.json'), 'utf8')) as { creation_date?: string };
    expect(record.creation_date).toBeTruthy();
    expect((await storage.getUpload('done')).creation_date).toBe(record.creation_date);
  });

  it('keeps the creation date of a deferred-length upload', async () => {
    await createWith('deferred', undefined, 'abc');
    expect((await storage.getUpload('deferred')).creation_date).toBeTruthy();
  });

  it('throws ERR_UPLOAD_NOT_FOUND for an unknown id', async () => {
    const error = await storage.getUpload('missing').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect(error).toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND', status: 404 });
    await expect(storage.datastore.getUpload('missing')).rejects.toBe(ERRORS.FILE_NOT_FOUND);
  });

  it.each(['../../etc/passwd', '../outside', '..', '.expired/../../x'])('never reads outside the directory for %j', async (id) => {
    await expect(storage.getUpload(id)).rejects.toMatchObject({ status: 404 });
  });
});

describe('read', () => {
  it('streams the whole upload or an inclusive range', async () => {
    await createWith('r', 10, '0123456789');
    expect(await text(await storage.read('r'))).toBe('0123456789');
    expect(await text(await storage.read('r', { start: 2, end: 4 }))).toBe('234');
    expect(await text(await storage.read('r', { start: 9, end: 9 }))).toBe('9');
  });

  it('throws like getUpload for unknown and expired uploads', async () => {
    await expect(storage.read('missing')).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    await createWith('gone', 10, 'ab');
    await storage.expire('gone');
    await expect(storage.read('gone')).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE' });
  });
});

describe('listUploadIds', () => {
  it('lists every upload, finished or not, and nothing else', async () => {
    expect(await storage.listUploadIds()).toEqual([]);
    await createWith('b', 3, 'abc');
    await createWith('a', 10, 'a');
    await storage.checkReady();
    await fs.writeFile(path.join(dir, 'stray-file'), 'x');
    expect((await storage.listUploadIds()).sort()).toEqual(['a', 'b']);
  });
});

describe('expire', () => {
  it('removes data and record, and remembers the id so it answers 410', async () => {
    await createWith('e', 10, 'abc');
    await storage.expire('e');
    expect(await fileExists(path.join(dir, 'e'))).toBe(false);
    expect(await fileExists(path.join(dir, 'e.json'))).toBe(false);
    expect(await fileExists(path.join(dir, '.expired', 'e'))).toBe(true);
    await expect(storage.getUpload('e')).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE', status: 410 });
    await expect(storage.datastore.getUpload('e')).rejects.toBe(ERRORS.FILE_NO_LONGER_EXISTS);
    expect(await storage.listUploadIds()).toEqual([]);
  });

  it('also drops a record whose data file is already gone', async () => {
    await createWith('half', 10, 'abc');
    await fs.rm(path.join(dir, 'half'));
    await storage.expire('half');
    expect(await fileExists(path.join(dir, 'half.json'))).toBe(false);
    await expect(storage.getUpload('half')).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE' });
  });

  it('refuses ids that would leave the tombstone folder', async () => {
    await expect(storage.expire('../../victim')).rejects.toBe(ERRORS.FILE_NOT_FOUND);
    expect(await fileExists(path.join(dir, '..', 'victim'))).toBe(false);
  });
});

describe('checkReady', () => {
  it('passes on a writable directory and leaves nothing behind', async () => {
    await storage.checkReady();
    const names = [...(await fs.readdir(dir)), ...(await fs.readdir(path.join(dir, '.tmp')))];
    expect(names.filter((name) => name.includes('ready'))).toEqual([]);
  });

  it('fails when the directory has become a file', async () => {
    await fs.rm(dir, { recursive: true });
    await fs.writeFile(dir, 'x');
    await expect(storage.checkReady()).rejects.toThrow();
    await fs.rm(dir);
  });
});

describe('AtomicFileKvStore', () => {
  it('writes records through a temporary file and leaves none behind', async () => {
    const store = new AtomicFileKvStore(dir);
    const upload = new Upload({ id: 'rec', size: 5, offset: 0 });
    for (let i = 0; i < 20; i += 1) await store.set('rec', upload);
    expect(await store.get('rec')).toMatchObject({ id: 'rec', size: 5 });
    expect(await fs.readdir(path.join(dir, '.tmp'))).toEqual([]);
  });

  it('never leaves a half-written record under concurrent writes', async () => {
    const store = new AtomicFileKvStore(dir);
    const big = new Upload({ id: 'c', size: 1, offset: 0, metadata: { blob: 'x'.repeat(200_000) } });
    const small = new Upload({ id: 'c', size: 2, offset: 0 });
    await store.set('c', small);
    let done = false;
    const writes = Promise.all(Array.from({ length: 40 }, (_, i) => store.set('c', i % 2 ? big : small))).finally(() => {
      done = true;
    });
    let parsed = 0;
    for (let i = 0; i < 2_000 && !done; i += 1) {
      // A torn write would make JSON.parse throw here and fail the test.
      const record = JSON.parse(await fs.readFile(path.join(dir, 'c.json'), 'utf8')) as { id: string };
      expect(record.id).toBe('c');
      parsed += 1;
    }
    await writes;
    expect(parsed).toBeGreaterThan(0);
  });

  it('refuses keys outside the directory', async () => {
    const store = new AtomicFileKvStore(dir);
    await expect(store.set('../escape', new Upload({ id: 'x', size: 1, offset: 0 }))).rejects.toBe(ERRORS.FILE_NOT_FOUND);
    expect(await fileExists(path.join(dir, '..', 'escape.json'))).toBe(false);
  });
});

describe('an upload whose bytes DELETE_AFTER_PROCESSING removed', () => {
  it('says so at every moment of the removal, also between its data file and its record going', async () => {
    await createWith('done1', 5, 'hello');
    await storage.discardBytes?.('done1');
    await expect(storage.getUpload('done1')).rejects.toThrow(/was processed and its bytes were deleted/);

    // The moment in between: the tombstone and the record are there, the data file is not.
    await createWith('done2', 5, 'hello');
    await fs.writeFile(path.join(dir, '.expired', 'done2'), 'processed');
    await fs.rm(path.join(dir, 'done2'));
    await expect(storage.getUpload('done2')).rejects.toThrow(/was processed and its bytes were deleted/);
  });
});
