/**
 * What one background sweep costs (the processing reconcile, then the expiry sweep) when the
 * store holds many finished, processed uploads: storage calls by name, and time.
 *
 *   npx tsx e2e/bench/sweep-cost.ts [--uploads 10000] [--storage file,s3] [--concurrency 32]
 *
 * The uploads are written straight into the store (one byte each, e2e/support/seeded-uploads.ts),
 * then marked settled through the storage's `markSettled` where the checkout has one (what
 * processing does when it ends). The queue is a stub that says every upload's processing job
 * is done, so the numbers are the storage's alone. Counted: S3 requests through the SDK
 * client's middleware; on file storage, node:fs/promises calls; on both, calls of
 * storage.getUpload. On S3 it uses e2e/services/ceph-rgw.sh's local Ceph RGW (started when
 * not running, stopped again if it was started here) with a bucket of its own, deleted at the end.
 *
 * It imports the server's modules by their path, so it also runs on an older checkout (copy
 * this file and e2e/support/seeded-uploads.ts into it) for a before/after comparison.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import { MemoryLocker } from '@tus/server';
import pino from 'pino';
import { parseConfig, type Env } from '../../server/src/config.js';
import { createProcessing } from '../../server/src/processing/processing-service.js';
import { createFileStatusStore } from '../../server/src/processing/file-status-store.js';
import type { JobQueue } from '../../server/src/processing/job-queue.js';
import { createStorage, type UploadStorage } from '../../server/src/storage/index.js';
import { createExpirySweeper } from '../../server/src/tus/expiry-sweeper.js';
import { testS3Client } from '../services/s3-env.js';
import { countFsCalls, countS3Requests, deletePrefix, eachLimited, seedFinishedUploads } from '../support/seeded-uploads.js';
import { openCephS3 } from './ceph-s3.js';

const HELP = `Usage: npx tsx e2e/bench/sweep-cost.ts [options]

One background sweep (processing reconcile + expiry sweep) with many finished,
processed uploads in the store: storage calls counted by name, and its time.

Options:
  --uploads N        finished, processed uploads to write into the store (default 10000)
  --storage KINDS    file, s3 or file,s3 (default file,s3)
  --concurrency N    parallel writes while seeding (default 32)
  --help             this text
`;

const { values: args } = parseArgs({
  options: {
    uploads: { type: 'string', default: '10000' },
    storage: { type: 'string', default: 'file,s3' },
    concurrency: { type: 'string', default: '32' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const uploads = Number(args.uploads);
const concurrency = Number(args.concurrency);
const kinds = args.storage.split(',').map((k) => k.trim());
if (!Number.isInteger(uploads) || uploads < 1 || !Number.isInteger(concurrency) || concurrency < 1 || kinds.some((k) => k !== 'file' && k !== 's3')) {
  process.stderr.write(HELP);
  process.exit(2);
}

const logger = pino({ level: 'silent' });
const log = (line: string) => process.stdout.write(line);

/** A queue that knows every processing job as done: the reconcile's queue calls cost nothing here. */
const doneQueue: JobQueue = {
  enqueue: async () => false,
  status: async () => 'done',
  start: () => undefined,
  stop: async () => undefined,
  idle: async () => undefined,
};

type Result = { kind: string; uploads: number; ms: number; getUploadCalls: number; calls: Map<string, number>; queued: number; expired: number };

/** storage with its getUpload calls counted. */
function countingGetUpload(storage: UploadStorage): { storage: UploadStorage; calls: () => number } {
  let calls = 0;
  const counted = new Proxy(storage, {
    get(target, property) {
      if (property === 'getUpload') {
        return (id: string) => {
          calls += 1;
          return target.getUpload(id);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { storage: counted, calls: () => calls };
}

async function markAll(storage: UploadStorage, ids: readonly string[]): Promise<boolean> {
  const mark = (storage as Partial<{ markSettled(id: string): Promise<void> }>).markSettled;
  if (!mark) return false;
  await eachLimited(ids, concurrency, (id) => mark.call(storage, id));
  return true;
}

async function sweep(kind: string, env: Env, storageDir: string, counter: { reset(): void; counts: Map<string, number> }, base: UploadStorage): Promise<Result> {
  const config = parseConfig(env);
  const { storage, calls } = countingGetUpload(base);
  const processing = createProcessing({
    storage,
    queue: doneQueue,
    statuses: createFileStatusStore(path.join(storageDir, '.status')),
    processors: [],
    hooks: {} as Parameters<typeof createProcessing>[0]['hooks'],
    logger,
    deleteRejected: false,
  });
  const sweeper = createExpirySweeper({
    storage,
    locker: new MemoryLocker() as unknown as Parameters<typeof createExpirySweeper>[0]['locker'],
    logger,
    expiryMs: config.tus.uploadExpiryMs,
    intervalMs: 60_000,
  });
  counter.reset();
  const started = performance.now();
  const queued = await processing.reconcile();
  const expired = await sweeper.sweepOnce();
  const ms = performance.now() - started;
  const result = { kind, uploads, ms, getUploadCalls: calls(), calls: new Map(counter.counts), queued, expired };
  // Printed at once: cleaning up tens of thousands of objects takes longer than the sweep.
  log(`${row(result)}\n`);
  return result;
}

function row(r: Result): string {
  const total = [...r.calls.values()].reduce((a, b) => a + b, 0);
  const byName = [...r.calls.entries()].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name} ${n}`).join(', ');
  return `${r.kind} | ${r.uploads} | ${r.ms.toFixed(0)} | ${r.getUploadCalls} | ${total}: ${byName || 'none'} | ${r.queued} | ${r.expired}`;
}

const HEADER = 'storage | uploads | time ms | getUpload calls | storage calls (total: by name) | queued | expired';

async function onFile(): Promise<Result> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-sweep-cost-'));
  try {
    const env: Env = { STORAGE: 'file', STORAGE_DIR: directory, UPLOAD_EXPIRY: '24h' };
    const storage = await createStorage(parseConfig(env));
    log(`file: writing ${uploads} finished uploads into ${directory}\n`);
    await seedFinishedUploads({ kind: 'file', directory }, uploads, concurrency);
    log(`file: ${(await markAll(storage, (await storage.listUploadIds()))) ? 'marked settled' : 'no settled markers in this checkout'}\n`);
    const counter = countFsCalls();
    try {
      return await sweep('file', env, directory, counter, storage);
    } finally {
      counter.uninstall();
    }
  } finally {
    await fs.rm(directory, { recursive: true, force: true });
  }
}

async function onS3(): Promise<Result> {
  const ceph = await openCephS3({ startTimeoutMs: 300_000, log });
  const storageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-sweep-cost-s3-'));
  const prefix = 'sweep-cost/';
  const client: S3Client = testS3Client({
    endpoint: ceph.env.S3_ENDPOINT ?? '',
    region: ceph.env.S3_REGION ?? 'us-east-1',
    accessKeyId: ceph.env.S3_ACCESS_KEY_ID ?? '',
    secretAccessKey: ceph.env.S3_SECRET_ACCESS_KEY ?? '',
    forcePathStyle: ceph.env.S3_FORCE_PATH_STYLE === 'true',
  });
  try {
    const env: Env = { ...ceph.env, STORAGE: 's3', S3_BUCKET: ceph.bucket, S3_PREFIX: prefix, STORAGE_DIR: storageDir, UPLOAD_EXPIRY: '24h' };
    const storage = await createStorage(parseConfig(env));
    log(`s3: writing ${uploads} finished uploads under ${ceph.bucket}/${prefix}\n`);
    const ids = await seedFinishedUploads({ kind: 's3', client, bucket: ceph.bucket, prefix }, uploads, concurrency);
    log(`s3: ${(await markAll(storage, ids)) ? 'marked settled' : 'no settled markers in this checkout'}\n`);
    const counter = countS3Requests((storage.datastore as unknown as { s3: S3Client }).s3);
    return await sweep('s3', env, storageDir, counter, storage);
  } finally {
    log('s3: deleting the bench objects\n');
    await deletePrefix(client, ceph.bucket, prefix).catch((error: unknown) => log(`could not empty ${ceph.bucket}: ${String(error)}\n`));
    client.destroy();
    await ceph.close();
    await fs.rm(storageDir, { recursive: true, force: true });
  }
}

const results: Result[] = [];
for (const kind of kinds) results.push(kind === 'file' ? await onFile() : await onS3());

log(`\n${HEADER}\n${results.map(row).join('\n')}\n`);
