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

// `<id>.part` holds an upload's last bytes while they are fewer than S3's smallest part.
// Bytes acknowledged there must survive a PATCH that dies half-way, and must not be counted
// twice when a crash leaves `<id>.part` behind after its bytes went into a part.
const s3 = inject('s3');
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A request body that delivers `first` and then breaks, as a killed connection or process would. */
const breaksAfter = (first: Buffer) =>
  Readable.from(
    (async function* () {
      yield first;
      throw new Error('connection reset by peer');
    })(),
  );

describe('S3 trailing part (<id>.part)', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
  });

  async function store(): Promise<{ storage: UploadStorage; datastore: PrefixedS3Store; config: S3StorageConfig }> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-trailing-'));
    dirs.push(dir);
    const env = s3ServerEnv(s3, { STORAGE_DIR: dir, S3_PART_SIZE: '8MiB', S3_PREFIX: `trailing-${randomBytes(4).toString('hex')}/` });
    const config = parseConfig(env).storage as S3StorageConfig;
    const storage = await createS3Storage({ config, uploadExpiryMs: 0 });
    return { storage, datastore: storage.datastore as PrefixedS3Store, config };
  }

  async function readAll(storage: UploadStorage, id: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await storage.read(id)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  it('keeps acknowledged bytes when the next PATCH breaks before they reach a part', async () => {
    const { storage, datastore } = await store();
    const content = randomBytes(12 * MiB);
    const id = randomBytes(8).toString('hex');
    await datastore.create(new Upload({ id, size: content.length, offset: 0 }));

    expect(await datastore.write(Readable.from([content.subarray(0, 3 * MiB)]), id, 0)).toBe(3 * MiB);
    // The next PATCH brings 1 MiB and dies: upstream had already deleted <id>.part by then.
    await expect(datastore.write(breaksAfter(content.subarray(3 * MiB, 4 * MiB)), id, 3 * MiB)).rejects.toThrow();
    expect((await storage.getUpload(id)).offset).toBe(3 * MiB);

    expect(await datastore.write(Readable.from([content.subarray(3 * MiB)]), id, 3 * MiB)).toBe(content.length);
    expect(sha256(await readAll(storage, id))).toBe(sha256(content));
  });

  it('does not count a stale <id>.part whose bytes already went into a part', async () => {
    const { storage, datastore, config } = await store();
    const content = randomBytes(12 * MiB);
    const id = randomBytes(8).toString('hex');
    await datastore.create(new Upload({ id, size: content.length, offset: 0 }));
    const head = content.subarray(0, 3 * MiB);
    await datastore.write(Readable.from([head]), id, 0);
    const trailing = await datastore.s3.headObject({ Bucket: config.bucket, Key: `${config.prefix}${id}.part` });
    expect(trailing.Metadata?.['tus-next-part']).toBe('1');

    // Part 1 (8 MiB, starting with those 3 MiB) goes up, nothing trails it...
    expect(await datastore.write(Readable.from([content.subarray(3 * MiB, 8 * MiB)]), id, 3 * MiB)).toBe(8 * MiB);
    await expect(datastore.s3.headObject({ Bucket: config.bucket, Key: `${config.prefix}${id}.part` })).rejects.toThrow();
    // ...and the process dies before deleting <id>.part: put it back as it was.
    await datastore.s3.putObject({ Bucket: config.bucket, Key: `${config.prefix}${id}.part`, Body: head, ContentLength: head.length, Metadata: { 'tus-next-part': '1' } });

    expect((await storage.getUpload(id)).offset).toBe(8 * MiB);
    expect(await datastore.write(Readable.from([content.subarray(8 * MiB)]), id, 8 * MiB)).toBe(content.length);
    expect(sha256(await readAll(storage, id))).toBe(sha256(content));
    await expect(datastore.s3.headObject({ Bucket: config.bucket, Key: `${config.prefix}${id}.part` })).rejects.toThrow();
  });
});
