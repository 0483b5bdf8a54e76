import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv, testS3Client } from './services/s3-env.js';
import { ByteSource, KiB, MiB, sha256 } from './support/files.js';
import { pollUntil, REPO_ROOT, Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { processingJobState, uploadIdOf, waitForState } from './support/status.js';
import { createUpload, download, fetchWithin, head, patch, rawPatch, TUS, type RawResponse } from './support/tus.js';

const run = promisify(execFile);

/**
 * Why a small file system cannot be mounted on this machine, or undefined when it can: a
 * tmpfs of a few MiB is a real file system that fills up (`ENOSPC`), which nothing else
 * imitates faithfully. Mounting needs root or CAP_SYS_ADMIN (CI runs as root).
 */
function mountProblem(): string | undefined {
  if (process.platform !== 'linux') return `mounting a tmpfs needs Linux, this is ${process.platform}`;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe', timeout: 10_000 });
    execFileSync('umount', [probe], { stdio: 'pipe', timeout: 10_000 });
    return undefined;
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? (error as Error).message).trim();
    return `cannot mount a small tmpfs (uid ${process.getuid?.() ?? '?'}; needs root or CAP_SYS_ADMIN): ${stderr}`;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

const cannotMount = mountProblem();
if (cannotMount) console.warn(`e2e/storage-full.test.ts: the full-disk tests are skipped: ${cannotMount}`);

/** A tmpfs of `mib` MiB, unmounted by the scope after everything registered later (the servers on it) has stopped. */
async function smallDisk(scope: Scope, mib: number): Promise<string> {
  const dir = await scope.tempDir('tus-small-disk-');
  await run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir], { timeout: 10_000 });
  scope.defer(async () => {
    await run('umount', [dir], { timeout: 10_000 }).catch(() => run('umount', ['--lazy', dir], { timeout: 10_000 }));
  });
  return dir;
}

/** Bytes a process may still write on the file system of `dir`. */
async function freeBytes(dir: string): Promise<number> {
  const stats = await fsp.statfs(dir);
  return stats.bavail * stats.bsize;
}

/** Fills the file system of `dir` with one file until `leave` bytes are free (tmpfs counts whole pages: keep `leave` page-aligned). */
async function fillUntil(dir: string, leave: number): Promise<string> {
  const filler = path.join(dir, `filler-${Date.now()}`);
  const size = (await freeBytes(dir)) - leave;
  if (size < 0) throw new Error(`only ${await freeBytes(dir)} bytes free, wanted to leave ${leave}`);
  await fsp.writeFile(filler, Buffer.alloc(size));
  expect(await freeBytes(dir)).toBe(leave);
  return filler;
}

/** A PATCH of `body` from `offset` over its own connection, so a server that answers before reading it all is heard. */
async function rawPatchAll(url: string, offset: number, body: Uint8Array): Promise<RawResponse> {
  const request = rawPatch(url, offset, { 'Content-Length': body.byteLength });
  await request.writePaced(body, 256 * KiB, 0);
  request.end();
  return withTimeout(request.response, 30_000, 'the PATCH to be answered');
}

function expectStorageFull(response: RawResponse): void {
  expect(response.status, response.body).toBe(507);
  expect(response.headers['retry-after']).toBe('30');
  expect(response.headers['tus-resumable']).toBe('1.0.0');
  expect(response.body).toMatch(/^ERR_STORAGE_FULL: /);
}

describe.skipIf(cannotMount !== undefined)('a full disk under STORAGE_DIR (a real tmpfs)', () => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  async function serverOnSmallDisk(mib: number, env: Record<string, string>): Promise<{ disk: string; storageDir: string; server: ServerProcess }> {
    const disk = await smallDisk(scope, mib);
    const storageDir = path.join(disk, 'uploads');
    await fsp.mkdir(storageDir);
    const server = await scope.server({ storageDir, env });
    return { disk, storageDir, server };
  }

  it('a PATCH that runs out of space answers 507 with Retry-After; HEAD says what is on disk; once space is freed the upload resumes and ends byte-identical and processed', async () => {
    const { disk, storageDir, server } = await serverOnSmallDisk(16, { MIN_FREE_SPACE: '0' });
    const total = 8 * MiB;
    const content = new ByteSource('storage-full-resume').bytes(0, total);
    const url = await createUpload(server.endpoint, { length: total });
    const id = uploadIdOf(url);
    // Room for a part of the upload only.
    const filler = await fillUntil(disk, 3 * MiB);

    expectStorageFull(await rawPatchAll(url, 0, content));

    // The offset is exactly what the data file holds, and those bytes are the client's.
    const state = await head(url);
    expect(state.status).toBe(200);
    const onDisk = await fsp.readFile(path.join(storageDir, id));
    expect(state.offset).toBe(onDisk.byteLength);
    expect(onDisk.byteLength).toBeGreaterThan(0);
    expect(onDisk.byteLength).toBeLessThan(total);
    expect(sha256(onDisk)).toBe(sha256(content.subarray(0, onDisk.byteLength)));
    // A creation on the full disk (its record cannot be written) is a 507 too.
    const creation = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10' } });
    expect(creation.status, await creation.text()).toBe(507);
    expect(creation.headers.get('retry-after')).toBe('30');

    // Space back: the rest, from that offset.
    await fsp.rm(filler);
    const offset = onDisk.byteLength;
    const rest = await patch(url, offset, content.subarray(offset));
    expect(rest.status, rest.text).toBe(204);
    expect(rest.offset).toBe(total);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(sha256(content));
    const status = await waitForState(server.url, id, ['done'], 30_000);
    expect(status.processors.sha256).toMatchObject({ ok: true, result: { sha256: sha256(content), bytes: content.byteLength } });
  });

  it('the last PATCH answers 507, not 204, when the processing job cannot be written; the next HEAD queues it once there is room', async () => {
    const { disk, storageDir, server } = await serverOnSmallDisk(16, { MIN_FREE_SPACE: '0' });
    const head1 = MiB;
    const tail = 64 * KiB;
    const content = new ByteSource('storage-full-queue').bytes(0, head1 + tail);
    const url = await createUpload(server.endpoint, { length: head1 + tail });
    const id = uploadIdOf(url);
    expect((await patch(url, 0, content.subarray(0, head1))).status).toBe(204);
    // Room for the last bytes exactly (page-aligned on a page-aligned offset), none for the queue's journal.
    const filler = await fillUntil(disk, tail);

    expectStorageFull(await rawPatchAll(url, head1, content.subarray(head1)));
    expect((await fsp.stat(path.join(storageDir, id))).size).toBe(head1 + tail);
    expect(await processingJobState(storageDir, id)).toBeUndefined();
    // The batch the queue could not write left nothing behind.
    expect(await fsp.readdir(path.join(storageDir, '.queue', 'tmp'))).toEqual([]);
    // A HEAD while the disk is still full: the upload is complete, the job still cannot be written.
    expect((await head(url)).offset).toBe(head1 + tail);
    expect(await processingJobState(storageDir, id)).toBeUndefined();

    await fsp.rm(filler);
    // The HEAD a client sends before resuming queues it now.
    expect((await head(url)).offset).toBe(head1 + tail);
    expect(await processingJobState(storageDir, id)).toBeDefined();
    const status = await waitForState(server.url, id, ['done'], 30_000);
    expect(status.processors.sha256).toMatchObject({ ok: true, result: { sha256: sha256(content), bytes: content.byteLength } });
    expect((await download(url)).sha256).toBe(sha256(content));
  });

  it('a PATCH with Upload-Checksum, staged on disk to be verified first, answers 507 on a full disk and stores nothing', async () => {
    const { disk, storageDir, server } = await serverOnSmallDisk(16, { MIN_FREE_SPACE: '0' });
    const content = new ByteSource('storage-full-checksum').bytes(0, 4 * MiB);
    const checksum = `sha256 ${createHash('sha256').update(content).digest('base64')}`;
    const url = await createUpload(server.endpoint, { length: content.byteLength });
    const filler = await fillUntil(disk, MiB);

    const request = rawPatch(url, 0, { 'Content-Length': content.byteLength, 'Upload-Checksum': checksum });
    await request.writePaced(content, 256 * KiB, 0);
    request.end();
    expectStorageFull(await withTimeout(request.response, 30_000, 'the PATCH to be answered'));
    // Nothing of it reached the upload, and the staged copy is gone.
    expect((await head(url)).offset).toBe(0);
    expect(await fsp.readdir(path.join(storageDir, '.staging')).catch(() => [])).toEqual([]);

    await fsp.rm(filler);
    const again = await patch(url, 0, content, { 'Upload-Checksum': checksum });
    expect(again.status, again.text).toBe(204);
    expect((await download(url)).sha256).toBe(sha256(content));
  });

  it('below MIN_FREE_SPACE a creation answers 507 and /readyz 503, while an upload in progress still takes its bytes', async () => {
    const { disk, server } = await serverOnSmallDisk(16, { MIN_FREE_SPACE: '8MiB' });
    const content = new ByteSource('storage-full-minimum').bytes(0, MiB);
    const url = await createUpload(server.endpoint, { length: MiB });
    expect((await fetchWithin(`${server.url}/readyz`)).status).toBe(200);

    const filler = await fillUntil(disk, 4 * MiB);
    // Free space is measured at most once a second.
    const notReady = await pollUntil(async () => {
      const res = await fetchWithin(`${server.url}/readyz`);
      return res.status === 503 ? ((await res.json()) as Record<string, string>) : undefined;
    }, '/readyz to answer 503', 5_000, 100);
    expect(notReady).toEqual({ status: 'unavailable', reason: 'STORAGE_DIR has less than MIN_FREE_SPACE (8 MiB) free' });
    const refused = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(MiB) } });
    expect(refused.status).toBe(507);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(await refused.text()).toMatch(/^ERR_STORAGE_FULL: the server is low on storage \(less than MIN_FREE_SPACE, 8 MiB, free\)/);

    // The upload that started before may finish.
    const finished = await patch(url, 0, content);
    expect(finished.status, finished.text).toBe(204);
    expect((await download(url)).sha256).toBe(sha256(content));

    await fsp.rm(filler);
    await pollUntil(async () => ((await fetchWithin(`${server.url}/readyz`)).status === 200 ? true : undefined), '/readyz to answer 200 again', 5_000, 100);
    await createUpload(server.endpoint, { length: MiB });
  });
});

/** Ceph's admin tool and the cluster's config, when the S3 endpoint is the local Ceph of e2e/services/ceph-rgw.sh (its state directory as the script finds it). */
function cephAdmin(): string[] | undefined {
  const conf = path.join(path.resolve(REPO_ROOT, process.env.CEPH_RGW_STATE_DIR ?? path.join('.tmp', 'ceph')), 'ceph.conf');
  try {
    execFileSync('radosgw-admin', ['--version'], { stdio: 'pipe', timeout: 10_000 });
  } catch {
    return undefined;
  }
  return fs.existsSync(conf) ? ['-c', conf] : undefined;
}

const ceph = cephAdmin();
if (!ceph) console.warn('e2e/storage-full.test.ts: the bucket-quota test is skipped: radosgw-admin or the ceph.conf of e2e/services/ceph-rgw.sh (CEPH_RGW_STATE_DIR, default .tmp/ceph) is not here');

describe.skipIf(ceph === undefined)('[s3] a bucket past its quota (Ceph RGW QuotaExceeded)', () => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  const admin = (...args: string[]) => run('radosgw-admin', [...(ceph ?? []), ...args], { timeout: 30_000 });

  it('a PATCH that S3 refuses for the quota answers 507; the parts stored stay counted and the upload resumes once the quota is lifted', async () => {
    const s3 = inject('s3');
    const client = testS3Client(s3);
    const bucket = `${s3.bucket.slice(0, 40)}-quota`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    scope.defer(async () => {
      for (const { Key, UploadId } of (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
      }
      for (const { Key } of (await client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []) {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
      }
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      client.destroy();
    });
    // Two 5 MiB parts fit, a third does not.
    await admin('quota', 'set', '--quota-scope=bucket', `--bucket=${bucket}`, `--max-size=${12 * MiB}`);
    await admin('quota', 'enable', '--quota-scope=bucket', `--bucket=${bucket}`);
    // RGW learns of the new quota within moments: wait (bounded) until an object over it is refused.
    await pollUntil(async () => {
      const refused = await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'quota-probe', Body: Buffer.alloc(13 * MiB) })).then(
        async () => {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'quota-probe' }));
          return false;
        },
        (error: unknown) => {
          if ((error as { name?: unknown }).name !== 'QuotaExceeded') throw error;
          return true;
        },
      );
      return refused ? true : undefined;
    }, 'the bucket quota to be enforced', 30_000, 1_000);

    const server = await scope.server({ env: s3ServerEnv({ ...s3, bucket }, { S3_PART_SIZE: '5MiB' }) });
    const total = 16 * MiB;
    const content = new ByteSource('storage-full-quota').bytes(0, total);
    const url = await createUpload(server.endpoint, { length: total });
    const id = uploadIdOf(url);

    expectStorageFull(await rawPatchAll(url, 0, content));
    // Parts go up several at once: which of them fit depends on their order at RGW, and one
    // refused may leave later ones stored. Only the run of parts from the first counts.
    const state = await head(url);
    expect(state.offset).toBeLessThan(total);
    expect((state.offset ?? -1) % (5 * MiB)).toBe(0);

    await admin('quota', 'disable', '--quota-scope=bucket', `--bucket=${bucket}`);
    // RGW picks up the bucket's new quota settings within moments: retry the PATCH (bounded) until it takes.
    const offset = state.offset ?? 0;
    const rest = await pollUntil(async () => {
      const res = await patch(url, offset, content.subarray(offset));
      return res.status === 507 ? undefined : res;
    }, 'the PATCH to be accepted once the quota is lifted', 30_000, 1_000);
    expect(rest.status, rest.text).toBe(204);
    expect((await download(url)).sha256).toBe(sha256(content));
    const status = await waitForState(server.url, id, ['done'], 30_000);
    expect(status.processors.sha256).toMatchObject({ ok: true, result: { sha256: sha256(content) } });
  });
});
