import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Upload } from '@tus/utils';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { parseConfig, type Env } from '../config.js';
import { createStorage } from './index.js';
import { storageContract } from './storage.contract.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { testS3Client } from '../../../e2e/services/s3-env.js';

// The endpoint comes from e2e/services/s3-global-setup.ts (a local Ceph RADOS Gateway).
const s3 = inject('s3');

function s3Env(overrides: Env = {}): Env {
  return { ...s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', UPLOAD_EXPIRY: '24h' }), ...overrides };
}

const client = testS3Client(s3);

/** Every object key and open multipart upload under `prefix`. */
async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }));
  keys.push(...(uploads.Uploads ?? []).map((u) => `multipart:${u.Key ?? ''}`));
  return keys;
}

function s3Harness(prefix: string) {
  return async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-contract-'));
    const storage = await createStorage(parseConfig(s3Env({ STORAGE_DIR: directory, S3_PREFIX: prefix })));
    return {
      storage,
      async leftovers(id: string) {
        return (await keysUnder(`${prefix}${id}`)).filter((key) => !key.includes('.expired/'));
      },
      cleanup: () => fs.rm(directory, { recursive: true, force: true }),
    };
  };
}

/** STORAGE_DIR of the storages that never write (their part buffer directory is wiped at creation). */
const scratch = path.join(os.tmpdir(), `tus-s3-scratch-${randomBytes(4).toString('hex')}`);
afterAll(() => fs.rm(scratch, { recursive: true, force: true }));

// With a prefix (as in production) and without one (ids at the bucket's top level,
// next to the first suite's "directory", which listUploadIds must not descend into).
storageContract('s3', s3Harness(`contract-${randomBytes(4).toString('hex')}/uploads/`));
storageContract('s3', s3Harness(''));

describe('s3 storage specifics', () => {
  it('puts every object under S3_PREFIX', async () => {
    const prefix = `prefixed-${randomBytes(4).toString('hex')}/`;
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-'));
    const storage = await createStorage(parseConfig(s3Env({ STORAGE_DIR: directory, S3_PREFIX: prefix })));
    await storage.datastore.create(new Upload({ id: 'abc', size: 3, offset: 0, metadata: {} }));
    expect((await keysUnder(prefix)).sort()).toEqual([`multipart:${prefix}abc`, `${prefix}abc.info`]);
    await storage.datastore.write(Readable.from([Buffer.from('xyz')]), 'abc', 0);
    expect((await keysUnder(prefix)).sort()).toEqual([`${prefix}abc`, `${prefix}abc.info`]);
    expect((await storage.getUpload('abc')).storage).toMatchObject({ type: 's3', path: `${prefix}abc`, bucket: s3.bucket });
    await storage.expire('abc');
    expect(await keysUnder(prefix)).toEqual([`${prefix}.expired/abc`]);
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('drops part buffers a killed process left behind, at startup', async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-'));
    const config = parseConfig(s3Env({ STORAGE_DIR: directory }));
    if (config.storage.kind !== 's3') throw new Error('expected s3 storage');
    await fs.mkdir(config.storage.tempDirectory, { recursive: true });
    await fs.writeFile(path.join(config.storage.tempDirectory, 'tus-s3-chunk-stale'), 'x');
    await createStorage(config);
    expect(await fs.readdir(config.storage.tempDirectory)).toEqual([]);
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('checkReady names the bucket and endpoint when the bucket does not exist', async () => {
    const storage = await createStorage(parseConfig(s3Env({ STORAGE_DIR: scratch, S3_BUCKET: 'no-such-bucket-here' })));
    await expect(storage.checkReady()).rejects.toThrow(`bucket no-such-bucket-here is not reachable at ${s3.endpoint}: NotFound (HTTP 404)`);
  });

  it('checkReady names the endpoint when nothing listens there', async () => {
    const storage = await createStorage(parseConfig(s3Env({ STORAGE_DIR: scratch, S3_ENDPOINT: 'http://127.0.0.1:9' })));
    await expect(storage.checkReady()).rejects.toThrow(/^bucket .* is not reachable at http:\/\/127\.0\.0\.1:9: /);
  });

  it('getUpload does not turn an unreachable endpoint into 404', async () => {
    const storage = await createStorage(parseConfig(s3Env({ STORAGE_DIR: scratch, S3_ENDPOINT: 'http://127.0.0.1:9' })));
    const error = await storage.getUpload('abc').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toMatchObject({ code: 'ERR_UPLOAD_NOT_FOUND' });
  });
});
