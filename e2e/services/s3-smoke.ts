// Smoke test for the local S3 endpoint (e2e/services/ceph-rgw.sh):
//   e2e/services/ceph-rgw.sh start
//   eval "$(e2e/services/ceph-rgw.sh env)" && npx tsx e2e/services/s3-smoke.ts
// Creates the bucket `tus-test`, puts/gets an object, runs a 2-part multipart
// upload (5 MiB parts) with ListParts, then deletes everything it made.
// Exits non-zero on the first failure.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

const BUCKET = 'tus-test';
const PART_SIZE = 5 * 1024 * 1024;

function env(name: string, fallback: string): string {
  return process.env[name] ?? fallback;
}

const client = new S3Client({
  endpoint: env('S3_ENDPOINT', 'http://127.0.0.1:7480'),
  region: env('S3_REGION', 'us-east-1'),
  credentials: {
    accessKeyId: env('S3_ACCESS_KEY_ID', 'tus-test-access-key'),
    secretAccessKey: env('S3_SECRET_ACCESS_KEY', 'tus-test-secret-key-0123456789'),
  },
  forcePathStyle: env('S3_FORCE_PATH_STYLE', 'true') === 'true',
  // Ceph 16 RGW answers the SDK's default aws-chunked trailing checksums with 411 MissingContentLength.
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  maxAttempts: 1,
});

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await run();
  console.log(`ok  ${name} (${Math.round(performance.now() - started)} ms)`);
  return result;
}

function errorName(error: unknown): string {
  return error instanceof S3ServiceException ? error.name : String(error);
}

async function emptyAndDeleteBucket(): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: BUCKET }));
  } catch {
    return;
  }
  for (let page = 0; page < 100; page++) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    const keys = (listed.Contents ?? []).map((o) => o.Key).filter((k): k is string => k !== undefined);
    if (keys.length === 0) break;
    for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: BUCKET }));
}

async function main(): Promise<void> {
  // A leftover from an interrupted run would make CreateBucket answer BucketAlreadyOwnedByYou.
  await emptyAndDeleteBucket();
  await step(`create bucket ${BUCKET}`, () => client.send(new CreateBucketCommand({ Bucket: BUCKET })));

  const small = randomBytes(1234);
  await step('put object', () =>
    client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'small.bin', Body: small, ContentType: 'application/octet-stream' })),
  );
  await step('get object', async () => {
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'small.bin' }));
    assert.ok(got.Body, 'GetObject returned no body');
    const bytes = await got.Body.transformToByteArray();
    assert.equal(bytes.length, small.length);
    assert.equal(sha256(bytes), sha256(small));
  });

  const key = 'multipart.bin';
  const parts = [randomBytes(PART_SIZE), randomBytes(PART_SIZE)];
  const created = await step('create multipart upload', () =>
    client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key })),
  );
  const UploadId = created.UploadId;
  assert.ok(UploadId, 'no UploadId');
  try {
    const etags: string[] = [];
    for (const [i, body] of parts.entries()) {
      const uploaded = await step(`upload part ${i + 1} (${body.length} bytes)`, () =>
        client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: i + 1, Body: body, ContentLength: body.length })),
      );
      assert.ok(uploaded.ETag, `part ${i + 1} has no ETag`);
      etags.push(uploaded.ETag);
    }
    await step('list parts', async () => {
      const listed = await client.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId }));
      const got = (listed.Parts ?? []).map((p) => [p.PartNumber, p.Size, p.ETag]);
      assert.deepEqual(got, etags.map((etag, i) => [i + 1, PART_SIZE, etag]));
    });
    await step('complete multipart upload', () =>
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      ),
    );
  } catch (error) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId })).catch(() => undefined);
    throw error;
  }
  await step('get multipart object', async () => {
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.ok(got.Body, 'GetObject returned no body');
    const bytes = await got.Body.transformToByteArray();
    assert.equal(bytes.length, 2 * PART_SIZE);
    assert.equal(sha256(bytes), sha256(Buffer.concat(parts)));
  });
  // Documented quirk (see ceph-rgw.sh): ListParts on a completed upload says NoSuchKey, not NoSuchUpload.
  await step('list parts of the completed upload fails', async () => {
    const error = await client.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error !== undefined, 'ListParts on a completed upload succeeded');
    console.log(`    (answered ${errorName(error)})`);
  });

  await step('delete objects and bucket', async () => {
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'small.bin' }));
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    await client.send(new DeleteBucketCommand({ Bucket: BUCKET }));
  });
  console.log('s3 smoke test passed');
}

main().catch(async (error: unknown) => {
  console.error('s3 smoke test FAILED:', error);
  await emptyAndDeleteBucket().catch(() => undefined);
  process.exitCode = 1;
});
