import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryLocker } from '@tus/server';
import { Upload } from '@tus/utils';
import pino from 'pino';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { parseConfig, type Env } from '../server/src/config.js';
import { createProcessingState } from '../server/src/processing/index.js';
import { createProcessing, processingKey } from '../server/src/processing/processing-service.js';
import { createStorage, type UploadStorage } from '../server/src/storage/index.js';
import { createExpirySweeper } from '../server/src/tus/expiry-sweeper.js';
import { s3ServerEnv, testS3Client } from './services/s3-env.js';
import { ByteSource } from './support/files.js';
import { countFsCalls, countS3Requests, deletePrefix, eachLimited, seedFinishedUploads } from './support/seeded-uploads.js';
import { Scope } from './support/server-process.js';
import { getStatus, uploadIdOf, waitForState } from './support/status.js';
import { head, startClientUpload } from './support/tus.js';
import { createTestStore, STORE_KINDS } from './support/stores.js';
import { startWebhookReceiver } from './support/webhook-receiver.js';

/**
 * Processing state lives with the uploads (issue 9): an instance that replaces another (on
 * S3 with an empty STORAGE_DIR; on file storage with its queue gone) processes nothing again
 * and sends no hook again, and a sweep over many processed uploads makes no call per upload.
 */

const SECRET = 'e2e-processing-state-secret-0123456789';
const UPLOADS = 4;

describe.each(STORE_KINDS)('[%s] a replaced instance', (kind) => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  it('re-processes nothing and re-sends no hook; the status resource still shows the results', async () => {
    const receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    const store = await createTestStore(kind, scope);
    const hookEnv = { HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, LOG_LEVEL: 'debug' };
    const first = await scope.server(store.startOptions(hookEnv));
    const ids: string[] = [];
    for (let i = 0; i < UPLOADS; i += 1) {
      const run = startClientUpload(new ByteSource(`state-${i}`).bytes(0, 64 * 1024 + i), { endpoint: first.endpoint, metadata: { filename: `f${i}.bin` } });
      ids.push(uploadIdOf(await run.done));
    }
    const processed = new Map<string, unknown>();
    for (const id of ids) {
      const status = await waitForState(first.url, id);
      expect(status.state, JSON.stringify(status)).toBe('done');
      processed.set(id, status.processors);
      await receiver.waitForDelivered(id, 'post-process', 30_000);
    }
    await first.stop();
    const sentBefore = receiver.deliveries.length;

    // The replacement: on S3 a new, empty STORAGE_DIR on the same bucket and prefix; on file
    // storage the same uploads with the queue gone (its record of done jobs is lost).
    const storageDir = kind === 's3' ? await scope.tempDir('tus-e2e-replacement-') : store.storageDir;
    if (kind === 'file') await fsp.rm(path.join(store.storageDir, '.queue'), { recursive: true, force: true });
    const second = await scope.server({ ...store.startOptions(hookEnv), storageDir });
    const sweep = await second.waitForLog((line) => line.msg === 'processing sweep done', 'the startup processing sweep', 30_000);
    expect(sweep).toMatchObject({ visited: 0, queued: 0 });

    // Clients asking about their finished uploads (HEAD queues processing when it is missing).
    for (const id of ids) {
      expect((await head(`${second.endpoint}${id}`)).status).toBe(200);
      const { body } = await getStatus(second.url, id);
      expect(body?.state).toBe('done');
      expect(body?.processors).toEqual(processed.get(id));
    }
    // Time for a wrongly queued job to run and announce itself.
    await sleep(1_500);
    const again = receiver.deliveries.slice(sentBefore).map((d) => `${d.type} ${d.uploadId ?? ''}`);
    expect(again).toEqual([]);
    expect(second.logs().filter((line) => line.msg === 'finished upload without processing found; queued')).toEqual([]);
    expect(second.logs().filter((line) => line.msg === 'upload processed')).toEqual([]);
  });
});

const PROCESSED = 300;
const silent = pino({ level: 'silent' });

/** Storage with its getUpload calls counted. */
function countGetUpload(storage: UploadStorage): { storage: UploadStorage; calls: string[] } {
  const calls: string[] = [];
  const counted = new Proxy(storage, {
    get(target, property) {
      if (property === 'getUpload') {
        return (id: string) => {
          calls.push(id);
          return target.getUpload(id);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { storage: counted, calls };
}

describe.each(STORE_KINDS)('[%s] a sweep with many processed uploads', (kind) => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  it(`makes no call per processed upload (${PROCESSED} of them): only listings, and reads of the few with work left`, async () => {
    const directory = await scope.tempDir('tus-e2e-sweep-');
    let env: Env = { STORAGE: 'file', STORAGE_DIR: directory, UPLOAD_EXPIRY: '24h' };
    const prefix = `e2e-sweep-${randomBytes(6).toString('hex')}/`;
    const s3 = kind === 's3' ? inject('s3') : undefined;
    const client = s3 ? testS3Client(s3) : undefined;
    if (s3 && client) {
      env = { ...s3ServerEnv(s3, { S3_PREFIX: prefix }), STORAGE_DIR: directory, UPLOAD_EXPIRY: '24h' };
      scope.defer(() => client.destroy());
      scope.defer(() => deletePrefix(client, s3.bucket, prefix));
    }
    const config = parseConfig(env);
    const base = await createStorage(config);
    const target = s3 && client ? ({ kind: 's3', client, bucket: s3.bucket, prefix } as const) : ({ kind: 'file', directory } as const);

    // Processed uploads (as processing leaves them: marked settled), plus the work left: two
    // unfinished uploads and one finished upload whose processing was never queued.
    const processedIds = await seedFinishedUploads(target, PROCESSED, 16);
    await eachLimited(processedIds, 16, (id) => base.markSettled(id));
    const [unprocessed] = await seedFinishedUploads(target, 1);
    const unfinished = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
    for (const id of unfinished) await base.datastore.create(new Upload({ id, size: 10, offset: 0 }));

    const { storage, calls } = countGetUpload(base);
    const state = createProcessingState(config, silent, storage);
    scope.defer(() => state.queue.stop());
    const processing = createProcessing({
      storage,
      queue: state.queue,
      statuses: state.statuses,
      processors: [],
      hooks: {} as Parameters<typeof createProcessing>[0]['hooks'],
      logger: silent,
      deleteRejected: false,
    });
    const sweeper = createExpirySweeper({
      storage,
      locker: new MemoryLocker() as unknown as Parameters<typeof createExpirySweeper>[0]['locker'],
      logger: silent,
      expiryMs: config.tus.uploadExpiryMs,
      intervalMs: 60_000,
    });

    const fsCalls = client ? undefined : countFsCalls();
    const requests = client ? countS3Requests((base.datastore as unknown as { s3: typeof client }).s3) : fsCalls!;
    try {
      expect(await processing.reconcile()).toBe(1);
      expect(await sweeper.sweepOnce()).toBe(0);
    } finally {
      fsCalls?.uninstall();
    }
    expect(await state.queue.status(processingKey(unprocessed ?? ''))).toBe('pending');
    // Read: the unsettled ones by the reconcile, then by the expiry sweep the unfinished ones
    // (S3 lists multipart uploads in progress; file storage cannot tell without a read, so it
    // reads the unsettled ones again).
    const sweptAgain = kind === 's3' ? unfinished : [unprocessed, ...unfinished];
    expect(calls.sort()).toEqual([unprocessed, ...unfinished, ...sweptAgain].sort());
    const byName = Object.fromEntries(requests.counts);
    if (kind === 's3') {
      // Listings (1,000 keys each: the uploads, the settled markers, the partial uploads of
      // concatenations, which expire even when finished) plus a handful of reads per upload with work left.
      expect(byName.ListObjectsV2Command, JSON.stringify(byName)).toBeLessThanOrEqual(3);
      expect(byName.ListMultipartUploadsCommand, JSON.stringify(byName)).toBe(1);
      expect(requests.total(), JSON.stringify(byName)).toBeLessThan(30);
    } else {
      expect(byName.readdir, JSON.stringify(byName)).toBeLessThanOrEqual(8);
      expect(requests.total(), JSON.stringify(byName)).toBeLessThan(40);
    }
  });
});
