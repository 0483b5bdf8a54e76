import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ERRORS, Upload } from '@tus/utils';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import { createStorage, type UploadStorage } from '../storage/index.js';
import { cacheUploadStates } from './state-cache.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

/** Real file storage, with its getUpload calls counted. */
async function countedStorage(): Promise<{ storage: UploadStorage; reads: () => number }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'state-cache-'));
  dirs.push(dir);
  const real = await createStorage(parseConfig({ STORAGE_DIR: dir }));
  let reads = 0;
  const counted = new Proxy(real, {
    get(target, property) {
      if (property === 'getUpload') {
        return (id: string) => {
          reads += 1;
          return target.getUpload(id);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { storage: counted, reads: () => reads };
}

async function create(storage: UploadStorage, size: number): Promise<string> {
  const id = `u${Math.random().toString(16).slice(2)}`;
  await storage.datastore.create(new Upload({ id, size, offset: 0, creation_date: new Date().toISOString() }));
  return id;
}

describe('cacheUploadStates', () => {
  it('answers repeated reads from memory', async () => {
    const { storage, reads } = await countedStorage();
    const id = await create(storage, 10);
    const cached = cacheUploadStates(storage);
    for (let i = 0; i < 5; i += 1) expect((await cached.getUpload(id)).offset).toBe(0);
    expect(reads()).toBe(1);
  });

  it('on file storage, a creation and a write leave what the store holds: nothing is read back', async () => {
    const { storage, reads } = await countedStorage();
    const cached = cacheUploadStates(storage);
    const id = await create(cached, 10);
    expect(await cached.getUpload(id)).toEqual(await storage.getUpload(id));
    await cached.datastore.write(Readable.from([Buffer.from('hello')]), id, 0);
    expect((await cached.getUpload(id)).offset).toBe(5);
    expect(await cached.getUpload(id)).toEqual(await storage.getUpload(id));
    // Only the two comparisons read the store.
    expect(reads()).toBe(2);
  });

  it('a failed write drops the entry: the next read asks the store', async () => {
    const { storage, reads } = await countedStorage();
    const cached = cacheUploadStates(storage);
    const id = await create(cached, 10);
    const failing = new Readable({
      read() {
        this.push(Buffer.from('abc'));
        this.destroy(new Error('client went away'));
      },
    });
    await expect(cached.datastore.write(failing, id, 0)).rejects.toBeDefined();
    await cached.getUpload(id);
    expect(reads()).toBe(1);
  });

  it('on S3 a write drops the entry (the offset depends on the parts): the next read asks the store', async () => {
    const { storage, reads } = await countedStorage();
    const asS3 = new Proxy(storage, { get: (target, property) => (property === 'kind' ? 's3' : Reflect.get(target, property, target)) });
    const cached = cacheUploadStates(asS3);
    const id = await create(cached, 10);
    await cached.getUpload(id);
    await cached.datastore.write(Readable.from([Buffer.from('hello')]), id, 0);
    expect((await cached.getUpload(id)).offset).toBe(5);
    expect(reads()).toBe(2);
  });

  it('@tus/server reads through the cache, a complete upload without its creation date, and cannot change the entry', async () => {
    const { storage, reads } = await countedStorage();
    const cached = cacheUploadStates(storage);
    const id = await create(cached, 5);
    await cached.datastore.write(Readable.from([Buffer.from('hello')]), id, 0);
    const seen = await cached.datastore.getUpload(id);
    expect(seen).toMatchObject({ id, offset: 5, size: 5, creation_date: undefined });
    seen.offset = 0;
    expect((await cached.getUpload(id)).creation_date).toEqual(expect.any(String));
    expect((await cached.getUpload(id)).offset).toBe(5);
    expect(reads()).toBe(0);
    // What it misses comes from the store, with the store's own errors.
    await expect(cached.datastore.getUpload('missing')).rejects.toBe(ERRORS.FILE_NOT_FOUND);
  });

  it('a read that overlapped a write is not kept', async () => {
    const { storage } = await countedStorage();
    const cached = cacheUploadStates(storage);
    const id = await create(cached, 10);
    // The read starts, then a write runs to its end before the read's answer is used.
    const overlapping = cached.getUpload(id);
    await cached.datastore.write(Readable.from([Buffer.from('abc')]), id, 0);
    await overlapping;
    expect((await cached.getUpload(id)).offset).toBe(3);
  });

  it('removal and expiry drop the entry: the next read fails as the store says', async () => {
    const { storage } = await countedStorage();
    const cached = cacheUploadStates(storage);
    const removed = await create(cached, 10);
    await cached.getUpload(removed);
    await cached.datastore.remove(removed);
    await expect(cached.getUpload(removed)).rejects.toMatchObject({ status: 404 });
    const expired = await create(cached, 10);
    await cached.getUpload(expired);
    await cached.expire(expired);
    await expect(cached.getUpload(expired)).rejects.toMatchObject({ status: 410 });
  });

  it('keeps at most maxEntries uploads', async () => {
    const { storage, reads } = await countedStorage();
    const cached = cacheUploadStates(storage, { maxEntries: 2 });
    const [a, b, c] = [await create(cached, 1), await create(cached, 1), await create(cached, 1)];
    for (const id of [a, b, c, c, b]) await cached.getUpload(id);
    expect(reads()).toBe(3);
    await cached.getUpload(a); // dropped when c came in
    expect(reads()).toBe(4);
  });
});
