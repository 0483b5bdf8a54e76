import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Upload } from '@tus/utils';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { parseConfig, type S3StorageConfig } from '../config.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { createS3Storage, type PrefixedS3Store } from './s3-storage.js';
import type { UploadStorage } from './types.js';

// A PATCH sends its parts to S3 several at once. When one is refused (a bucket past its
// quota: e2e/storage-full.test.ts) a later one of the same request may already be stored,
// leaving a gap in the part numbers. The offset is the bytes before the gap, and the next
// PATCH from there must end with exactly the client's bytes.
const s3 = inject('s3');
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('S3 parts after a gap', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
  });

  async function store(): Promise<{ storage: UploadStorage; datastore: PrefixedS3Store; config: S3StorageConfig }> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-gap-'));
    dirs.push(dir);
    const env = s3ServerEnv(s3, { STORAGE_DIR: dir, S3_PART_SIZE: '5MiB', S3_PREFIX: `gap-${randomBytes(4).toString('hex')}/` });
    const config = parseConfig(env).storage as S3StorageConfig;
    const storage = await createS3Storage({ config, uploadExpiryMs: 0 });
    return { storage, datastore: storage.datastore as PrefixedS3Store, config };
  }

  async function readAll(storage: UploadStorage, id: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.read(id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** An upload of `content` whose part 1 is stored through the store, then part 3 (its last bytes) as a racing request would have left it. */
  async function withGap(content: Buffer) {
    const { storage, datastore, config } = await store();
    const id = randomBytes(8).toString('hex');
    await datastore.create(new Upload({ id, size: content.length, offset: 0 }));
    expect(await datastore.write(Readable.from([content.subarray(0, 5 * MiB)]), id, 0)).toBe(5 * MiB);
    const key = `${config.prefix}${id}`;
    const listed = await datastore.s3.listMultipartUploads({ Bucket: config.bucket, Prefix: key });
    const uploadId = listed.Uploads?.find((upload) => upload.Key === key)?.UploadId;
    expect(uploadId).toBeDefined();
    return { storage, datastore, config, id, key, uploadId: uploadId ?? '' };
  }

  it('counts only the parts before the gap, and a PATCH from there ends byte-identical', async () => {
    const content = randomBytes(12 * MiB);
    const { storage, datastore, config, id, key, uploadId } = await withGap(content);
    // Part 2 (5-10 MiB) was refused; part 3 (10-12 MiB, the last) went up.
    await datastore.s3.uploadPart({ Bucket: config.bucket, Key: key, UploadId: uploadId, PartNumber: 3, Body: content.subarray(10 * MiB), ContentLength: 2 * MiB });

    expect((await storage.getUpload(id)).offset).toBe(5 * MiB);
    expect(await datastore.write(Readable.from([content.subarray(5 * MiB)]), id, 5 * MiB)).toBe(content.length);
    expect(sha256(await readAll(storage, id))).toBe(sha256(content));
  });

  it('does not count an <id>.part that begins a part past the gap', async () => {
    const content = randomBytes(14 * MiB);
    const { storage, datastore, config, id, key } = await withGap(content);
    // Part 2 (5-10 MiB) was refused; the request's last 1 MiB (10-11 MiB) went to <id>.part as the start of part 3.
    await datastore.s3.putObject({ Bucket: config.bucket, Key: `${key}.part`, Body: content.subarray(10 * MiB, 11 * MiB), ContentLength: MiB, Metadata: { 'tus-next-part': '3' } });

    expect((await storage.getUpload(id)).offset).toBe(5 * MiB);
    expect(await datastore.write(Readable.from([content.subarray(5 * MiB)]), id, 5 * MiB)).toBe(content.length);
    expect(sha256(await readAll(storage, id))).toBe(sha256(content));
  });
});
