// vitest globalSetup: a real S3 endpoint for the S3 storage tests.
//
// Runs `e2e/services/ceph-rgw.sh install` and `start` (each bounded), creates a bucket
// for this run, and hands the endpoint and keys to tests through provide/inject (tests
// under server/src never read process.env):
//
//   import { inject } from 'vitest';
//   const s3 = inject('s3');   // { endpoint, region, accessKeyId, secretAccessKey, forcePathStyle, bucket }
//
// Teardown empties and deletes the bucket, then stops the cluster with the script's
// `stop`, unless the cluster was already running before this run (a developer's, or a
// parallel run's, which shares it): then it is left as it was.
//
// Settings: CEPH_RGW_* as in ceph-rgw.sh; S3_SETUP_TIMEOUT (seconds for install + start,
// default 600).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type {
  S3Client} from '@aws-sdk/client-s3';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command
} from '@aws-sdk/client-s3';
import type { TestProject } from 'vitest/node';
import { testS3Client } from './s3-env.js';

export type ProvidedS3 = {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
  /** A bucket made for this test run (emptied and deleted at teardown). */
  bucket: string;
};

declare module 'vitest' {
  export interface ProvidedContext {
    s3: ProvidedS3;
  }
}

const run = promisify(execFile);
const script = fileURLToPath(new URL('./ceph-rgw.sh', import.meta.url));

async function ceph(command: string, timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run(script, [command], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; killed?: boolean; message: string };
    const why = e.killed ? `timed out after ${Math.round(timeoutMs / 1000)} s` : e.message;
    throw new Error(`e2e/services/ceph-rgw.sh ${command} failed (${why})\n${(e.stderr ?? '').slice(-4000)}`, { cause: error });
  }
}

async function isRunning(): Promise<boolean> {
  try {
    await run(script, ['status'], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** Parses the `export S3_...=value` lines of `ceph-rgw.sh env`. */
function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/^export (S3_[A-Z_]+)=(.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

async function emptyAndDeleteBucket(client: S3Client, Bucket: string): Promise<void> {
  for (;;) {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket }));
    for (const { Key, UploadId } of uploads.Uploads ?? []) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
    }
    if (!uploads.IsTruncated) break;
  }
  for (;;) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket }));
    const keys = (listed.Contents ?? []).map((o) => o.Key).filter((k): k is string => k !== undefined);
    if (keys.length === 0) break;
    await Promise.all(keys.map((Key) => client.send(new DeleteObjectCommand({ Bucket, Key }))));
  }
  await client.send(new DeleteBucketCommand({ Bucket }));
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const budget = Number(process.env.S3_SETUP_TIMEOUT ?? 600) * 1000;
  const started = Date.now();
  const wasRunning = await isRunning();
  await ceph('install', budget);
  await ceph('start', Math.max(budget - (Date.now() - started), 30_000));
  const env = parseEnv(await ceph('env', 30_000));

  const s3: ProvidedS3 = {
    endpoint: env.S3_ENDPOINT ?? 'http://127.0.0.1:7480',
    region: env.S3_REGION ?? 'us-east-1',
    accessKeyId: env.S3_ACCESS_KEY_ID ?? '',
    secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? '',
    forcePathStyle: env.S3_FORCE_PATH_STYLE === 'true',
    bucket: `tus-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`,
  };
  const client = testS3Client(s3);
  await client.send(new CreateBucketCommand({ Bucket: s3.bucket }));
  project.provide('s3', s3);

  return async () => {
    try {
      await emptyAndDeleteBucket(client, s3.bucket);
    } finally {
      client.destroy();
      if (!wasRunning) await ceph('stop', 120_000);
    }
  };
}
