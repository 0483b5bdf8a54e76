import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Upload } from '@tus/utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { parseConfig } from '../config.js';
import { SNIFF_BYTES } from '../processing/processors/detect-type.js';
import { createStorage, type ByteRange, type UploadStorage } from '../storage/index.js';
import { checkDeclaredDigest } from './declared-digest-check.js';
import { uploadStateOf, type UploadState } from './upload-state.js';

/**
 * Where the sha256 compared with the declared one comes from: the digest streamed in when it
 * covers the whole upload, otherwise one read of the stored bytes (file storage; the app
 * and e2e tests run both stores).
 */

const data = randomBytes(3 * SNIFF_BYTES + 17);
const hex = createHash('sha256').update(data).digest('hex');
const b64 = Buffer.from(hex, 'hex').toString('base64');

let dir: string;
let storage: UploadStorage;
let upload: UploadState;
let reads = 0;
/** The real storage, counting whole-file reads. */
const counting = { read: (id: string, range?: ByteRange) => ((reads += 1), storage.read(id, range)) };

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-digest-check-'));
  storage = await createStorage(parseConfig({ STORAGE_DIR: dir, LOG_LEVEL: 'silent' }));
  const stored = await storage.datastore.create(new Upload({ id: 'digest-check-upload', size: data.length, offset: 0 }));
  await storage.datastore.write(Readable.from([data]), stored.id, 0);
  upload = uploadStateOf(await storage.getUpload(stored.id));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('checkDeclaredDigest', () => {
  it('does nothing for an upload without a declared digest', async () => {
    reads = 0;
    expect(await checkDeclaredDigest(counting, upload, undefined)).toEqual({});
    expect(reads).toBe(0);
  });

  it('uses the streamed digest when it covers exactly the upload: nothing is read', async () => {
    reads = 0;
    const streamed = { sha256: hex, bytes: data.length, head: data.subarray(0, SNIFF_BYTES) };
    expect(await checkDeclaredDigest(counting, { ...upload, declaredSha256: b64 }, streamed)).toEqual({ digest: streamed });
    expect(reads).toBe(0);
  });

  it('reads the stored bytes when the streamed digest covers less, and hands the digest on for processing', async () => {
    reads = 0;
    const partial = { sha256: createHash('sha256').update(data.subarray(0, 10)).digest('hex'), bytes: 10, head: data.subarray(0, 10) };
    for (const streamed of [undefined, partial]) {
      const checked = await checkDeclaredDigest(counting, { ...upload, declaredSha256: b64 }, streamed);
      expect(checked.mismatch).toBeUndefined();
      expect(checked.digest).toEqual({ sha256: hex, bytes: data.length, head: data.subarray(0, SNIFF_BYTES) });
    }
    expect(reads).toBe(2);
  });

  it('a mismatch names both digests, as base64', async () => {
    const declared = createHash('sha256').update('other').digest('base64');
    const checked = await checkDeclaredDigest(counting, { ...upload, declaredSha256: declared }, undefined);
    expect(checked.mismatch).toBeInstanceOf(HttpError);
    expect(checked.mismatch?.status).toBe(460);
    expect(checked.mismatch?.body).toBe(`ERR_DIGEST_MISMATCH: the upload's sha-256 is :${b64}: but the client declared :${declared}:\n`);
  });
});
