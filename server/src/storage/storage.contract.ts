import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ERRORS, Upload } from '@tus/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UploadStorage } from './types.js';

/** What a storage kind's test file hands to the contract suite. */
export type StorageHarness = Readonly<{
  storage: UploadStorage;
  /** Everything the storage keeps for this id (files, objects), tombstones excepted. */
  leftovers(id: string): Promise<string[]>;
  cleanup(): Promise<void>;
}>;

const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (AES-256-CTR keystream of a seed). */
function bytes(length: number, seed: string): Buffer {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

const newId = () => randomBytes(16).toString('hex');

/**
 * The behaviour every storage kind owes the rest of the server. `make` builds a storage
 * with uploads expiring after a day; S3 uses 5 MiB parts, so the sizes below cross part
 * boundaries and leave incomplete trailing parts between writes.
 */
export function storageContract(kind: string, make: () => Promise<StorageHarness>): void {
  describe(`${kind} storage contract`, () => {
    let harness: StorageHarness;
    let storage: UploadStorage;

    beforeAll(async () => {
      harness = await make();
      storage = harness.storage;
    });

    afterAll(async () => {
      await harness?.cleanup();
    });

    async function create(id: string, size: number | undefined, metadata: Record<string, string> = { filename: `${id}.bin` }) {
      await storage.datastore.create(new Upload({ id, size, offset: 0, metadata }));
    }

    async function write(id: string, data: Buffer, offset: number, pieceSize = 256 * 1024): Promise<number> {
      const pieces: Buffer[] = [];
      for (let at = 0; at < data.length; at += pieceSize) pieces.push(data.subarray(at, at + pieceSize));
      return storage.datastore.write(Readable.from(pieces), id, offset);
    }

    it('is the kind it says', () => {
      expect(storage.kind).toBe(kind);
      expect(storage.datastore.hasExtension('creation-defer-length')).toBe(true);
      expect(storage.datastore.hasExtension('termination')).toBe(true);
    });

    it('checkReady resolves', async () => {
      await expect(storage.checkReady()).resolves.toBeUndefined();
    });

    it('creates an upload: offset 0, size, metadata and a creation date', async () => {
      const id = newId();
      await create(id, 1234, { filename: 'a.bin', filetype: 'application/octet-stream' });
      const upload = await storage.getUpload(id);
      expect(upload).toMatchObject({ id, offset: 0, size: 1234, metadata: { filename: 'a.bin', filetype: 'application/octet-stream' } });
      expect(upload.creation_date).toBeTruthy();
    });

    it('storedBytes: what the store holds, after each write; unknown ids are not found', async () => {
      const id = newId();
      await create(id, 3 * 1024);
      expect(await storage.storedBytes(id)).toBe(0);
      await write(id, Buffer.alloc(1024, 1), 0);
      expect(await storage.storedBytes(id)).toBe(1024);
      await write(id, Buffer.alloc(2048, 2), 1024);
      expect(await storage.storedBytes(id)).toBe(3 * 1024);
      await expect(storage.storedBytes(newId())).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    });

    it('unknown ids are not found (404, not 410)', async () => {
      const id = newId();
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
      await expect(storage.datastore.getUpload(id)).rejects.toBe(ERRORS.FILE_NOT_FOUND);
      await expect(storage.read(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    });

    it('writes in pieces across part boundaries, reports each offset, then reads the whole and ranges', async () => {
      const id = newId();
      const data = bytes(11 * MiB + 123, id);
      await create(id, data.length);
      // 3 MiB (below a part), then 4 MiB (completes a 5 MiB part, 2 MiB left over), then the rest.
      const cuts = [0, 3 * MiB, 7 * MiB, data.length];
      for (let i = 1; i < cuts.length; i += 1) {
        const from = cuts[i - 1] ?? 0;
        const to = cuts[i] ?? 0;
        expect(await write(id, data.subarray(from, to), from)).toBe(to);
        const upload = await storage.getUpload(id);
        expect(upload.offset).toBe(to);
        expect(upload.size).toBe(data.length);
      }
      const whole = await buffer(await storage.read(id));
      expect(whole.length).toBe(data.length);
      expect(whole.equals(data)).toBe(true);
      for (const [start, end] of [[0, 0], [0, 99], [5 * MiB - 10, 5 * MiB + 10], [data.length - 7, data.length - 1]] as const) {
        const part = await buffer(await storage.read(id, { start, end }));
        expect(part.equals(data.subarray(start, end + 1)), `bytes ${start}-${end}`).toBe(true);
      }
    });

    it('a finished upload keeps its creation date; @tus/server (the datastore) never sees it, so it never expires', async () => {
      const id = newId();
      await create(id, 10);
      await write(id, Buffer.from('hello'), 0);
      const created = (await storage.getUpload(id)).creation_date;
      expect(created).toBeTruthy();
      expect((await storage.datastore.getUpload(id)).creation_date).toBe(created);
      await write(id, Buffer.from('world'), 5);
      const finished = await storage.getUpload(id);
      expect(finished).toMatchObject({ offset: 10, size: 10 });
      // Hooks and processing report it (createdAt); it is the date of creation, not of the read.
      expect(finished.creation_date).toBe(created);
      expect((await storage.getUpload(id)).creation_date).toBe(created);
      // @tus/server compares every upload's creation date with the expiry: finished ones must not have one.
      expect((await storage.datastore.getUpload(id)).creation_date).toBeUndefined();
      expect((await buffer(await storage.read(id))).toString()).toBe('helloworld');
    });

    it('uploads finished at creation (0 bytes) or after a deferred length keep their creation date', async () => {
      const empty = newId();
      await create(empty, 0);
      const emptyCreated = (await storage.getUpload(empty)).creation_date;
      expect(emptyCreated).toBeTruthy();
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect((await storage.getUpload(empty)).creation_date).toBe(emptyCreated);

      const deferred = newId();
      await create(deferred, undefined);
      const created = (await storage.getUpload(deferred)).creation_date;
      await write(deferred, Buffer.from('ab'), 0);
      await storage.datastore.declareUploadLength(deferred, 4);
      await write(deferred, Buffer.from('cd'), 2);
      expect(await storage.getUpload(deferred)).toMatchObject({ offset: 4, size: 4, creation_date: created });
    });

    it('deferred length: bytes first, length declared later, then finished', async () => {
      const id = newId();
      await create(id, undefined);
      expect(await write(id, Buffer.from('abc'), 0)).toBe(3);
      expect((await storage.getUpload(id)).offset).toBe(3);
      await storage.datastore.declareUploadLength(id, 6);
      expect(await write(id, Buffer.from('def'), 3)).toBe(6);
      expect(await storage.getUpload(id)).toMatchObject({ offset: 6, size: 6 });
      expect((await buffer(await storage.read(id))).toString()).toBe('abcdef');
    });

    it('a zero-byte upload is finished at creation and reads as empty', async () => {
      const id = newId();
      await create(id, 0);
      expect(await storage.getUpload(id)).toMatchObject({ offset: 0, size: 0 });
      expect((await buffer(await storage.read(id))).length).toBe(0);
    });

    it('remove of an unfinished upload leaves nothing behind (incomplete parts included)', async () => {
      const id = newId();
      await create(id, 10 * MiB);
      await write(id, bytes(MiB, id), 0);
      expect((await harness.leftovers(id)).length).toBeGreaterThan(0);
      await storage.datastore.remove(id);
      expect(await harness.leftovers(id)).toEqual([]);
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
      expect(await storage.listUploadIds()).not.toContain(id);
    });

    it('remove of a finished upload leaves nothing behind', async () => {
      const id = newId();
      await create(id, 5);
      await write(id, Buffer.from('12345'), 0);
      await storage.datastore.remove(id);
      expect(await harness.leftovers(id)).toEqual([]);
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
    });

    it('remove of an unknown upload is FILE_NOT_FOUND', async () => {
      await expect(storage.datastore.remove(newId())).rejects.toBe(ERRORS.FILE_NOT_FOUND);
    });

    it('expire removes everything and leaves a tombstone: later requests get 410', async () => {
      const id = newId();
      await create(id, 10 * MiB);
      await write(id, bytes(MiB, id), 0);
      await storage.expire(id);
      expect(await harness.leftovers(id)).toEqual([]);
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE', status: 410 });
      await expect(storage.datastore.getUpload(id)).rejects.toBe(ERRORS.FILE_NO_LONGER_EXISTS);
      await expect(storage.read(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE' });
      expect(await storage.listUploadIds()).not.toContain(id);
    });

    it('expire tolerates an upload that is already partly gone', async () => {
      const id = newId();
      await create(id, 10);
      await storage.expire(id);
      await storage.expire(id);
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE' });
    });

    it('listUploadIds lists finished and unfinished uploads', async () => {
      const unfinished = newId();
      const finished = newId();
      await create(unfinished, 10);
      await create(finished, 3);
      await write(finished, Buffer.from('abc'), 0);
      const ids = await storage.listUploadIds();
      expect(ids).toEqual(expect.arrayContaining([unfinished, finished]));
      expect(new Set(ids).size).toBe(ids.length);
    });

    it('the sweeps\' listings: unsettled = unfinished and finished-unprocessed; unfinished includes every unfinished one', async () => {
      const [unfinished, deferred, finished, settled] = [newId(), newId(), newId(), newId()];
      await create(unfinished, 10);
      await write(unfinished, Buffer.from('abc'), 0);
      await create(deferred, undefined);
      for (const id of [finished, settled]) {
        await create(id, 3);
        await write(id, Buffer.from('abc'), 0);
      }
      expect(await storage.isSettled(settled)).toBe(false);
      await storage.markSettled(settled);
      await storage.markSettled(settled); // idempotent
      expect(await storage.isSettled(settled)).toBe(true);
      expect(await storage.isSettled(finished)).toBe(false);

      const unsettled = await storage.listUnsettled();
      expect(unsettled).toEqual(expect.arrayContaining([unfinished, deferred, finished]));
      expect(unsettled).not.toContain(settled);
      expect(new Set(unsettled).size).toBe(unsettled.length);
      const open = await storage.listUnfinished();
      expect(open).toEqual(expect.arrayContaining([unfinished, deferred]));
      expect(open).not.toContain(settled);
      expect(new Set(open).size).toBe(open.length);
      // Still listed as an upload: the marker is beside it, not instead of it.
      expect(await storage.listUploadIds()).toContain(settled);
    });

    it('removing or expiring an upload removes its settled marker', async () => {
      const [removed, expired] = [newId(), newId()];
      for (const id of [removed, expired]) {
        await create(id, 3);
        await write(id, Buffer.from('abc'), 0);
        await storage.markSettled(id);
      }
      await storage.datastore.remove(removed);
      await storage.expire(expired);
      expect(await storage.isSettled(removed)).toBe(false);
      expect(await storage.isSettled(expired)).toBe(false);
      const unsettled = await storage.listUnsettled();
      expect(unsettled).not.toContain(removed);
      expect(unsettled).not.toContain(expired);
    });
  });
}
