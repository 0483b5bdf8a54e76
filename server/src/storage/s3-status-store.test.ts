import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import pino from 'pino';
import { describe, expect, inject, it } from 'vitest';
import { s3ServerEnv, testS3Client } from '../../../e2e/services/s3-env.js';
import { parseConfig } from '../config.js';
import { createStorage } from './index.js';
import { createRecordStatusStore } from '../processing/record-status-store.js';
import { createProcessingState } from '../processing/index.js';
import { statusRecord, statusStoreContract } from '../processing/status-store.contract.js';

// Status records beside the uploads in the bucket: what an S3 deployment without Redis uses.
const s3 = inject('s3');
const client = testS3Client(s3);

async function deleteAll(prefix: string): Promise<void> {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  await Promise.all((listed.Contents ?? []).map(({ Key }) => client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key }))));
}

statusStoreContract('s3 (records beside the uploads)', async () => {
  const prefix = `status-contract-${randomBytes(4).toString('hex')}/`;
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-status-'));
  const storage = await createStorage(parseConfig({ ...s3ServerEnv(s3), STORAGE_DIR: directory, S3_PREFIX: prefix }));
  const records = storage.records;
  if (!records) throw new Error('S3 storage keeps no records beside the uploads');
  return {
    open: () => createRecordStatusStore(records),
    damage: async (id) => void (await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}.status/${id}.json`, Body: `{"id":"${id}",` }))),
    async destroy() {
      await deleteAll(prefix);
      await fs.rm(directory, { recursive: true, force: true });
    },
  };
});

describe('S3 status records, upgraded from records in STORAGE_DIR', () => {
  it('reads a record an older version left in STORAGE_DIR/.status; updates and deletes reach the bucket', async () => {
    const prefix = `status-legacy-${randomBytes(4).toString('hex')}/`;
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-status-'));
    try {
      const config = parseConfig({ ...s3ServerEnv(s3), STORAGE_DIR: directory, S3_PREFIX: prefix });
      const storage = await createStorage(config);
      await fs.mkdir(path.join(directory, '.status'), { recursive: true });
      await fs.writeFile(path.join(directory, '.status', 'old.json'), JSON.stringify(statusRecord('old', { state: 'done' })));
      const { statuses } = createProcessingState(config, pino({ level: 'silent' }), storage);
      expect(await statuses.get('old')).toEqual(statusRecord('old', { state: 'done' }));
      await statuses.update('new', () => statusRecord('new'));
      expect(await storage.records?.read('new')).toBe(JSON.stringify(statusRecord('new')));
      await statuses.delete('old');
      expect(await statuses.get('old')).toBeUndefined();
    } finally {
      await deleteAll(prefix);
      await fs.rm(directory, { recursive: true, force: true });
    }
  });
});
