/**
 * The S3 endpoint of the benchmark (e2e/bench/main.ts): the local Ceph RADOS Gateway of
 * e2e/services/ceph-rgw.sh, started when it is not running (and then stopped again by `close`,
 * never when somebody else started it), with a bucket of the bench's own that is emptied
 * after every run and deleted at the end.
 *
 * RGW deletes object data lazily (its garbage collector, after `rgw gc obj min wait`); `empty`
 * runs that collector at once, so the space of one run is free before the next and the
 * collection never runs during a measured upload.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { REPO_ROOT } from '../support/start-command.js';
import { testS3Client } from '../services/s3-env.js';

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'e2e/services/ceph-rgw.sh');
const CEPH_DAEMONS = ['mon', 'osd', 'rgw'] as const;

export type CephS3 = Readonly<{
  /** What our server and the plain baseline need besides STORAGE, S3_PART_SIZE and S3_PREFIX. */
  env: Readonly<Record<string, string>>;
  bucket: string;
  /** Whether this bench started Ceph (and so stops it in `close`). */
  startedHere: boolean;
  stateDir: string;
  /**
   * PIDs of the running Ceph daemons: during an S3 upload their CPU is part of the work,
   * not noise from other processes.
   */
  daemonPids(): Promise<number[]>;
  /** ContentLength of an object, or undefined when there is none. */
  objectSize(key: string): Promise<number | undefined>;
  /** Aborts every multipart upload and deletes every object in the bucket, then frees their space. */
  empty(): Promise<{ objects: number; multipartUploads: number; gcError?: string }>;
  /** Empties and deletes the bucket; stops Ceph when this bench started it. Idempotent. */
  close(): Promise<void>;
}>;

async function script(command: string, timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run(SCRIPT, [command], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; killed?: boolean; message: string };
    const why = e.killed ? `timed out after ${Math.round(timeoutMs / 1000)} s` : e.message;
    throw new Error(`e2e/services/ceph-rgw.sh ${command} failed (${why})\n${`${e.stdout ?? ''}${e.stderr ?? ''}`.slice(-4000)}`, { cause: error });
  }
}

type Status = { healthy: boolean; stateDir: string; pids: number[] };

/** `ceph-rgw.sh status`: exit 0 only when every daemon runs and S3 answers. */
async function status(): Promise<Status> {
  let text: string;
  let healthy = true;
  try {
    text = (await run(SCRIPT, ['status'], { timeout: 30_000 })).stdout;
  } catch (error) {
    healthy = false;
    text = (error as { stdout?: string }).stdout ?? '';
  }
  const pids = CEPH_DAEMONS.flatMap((d) => {
    const pid = new RegExp(`^${d}: running \\(pid (\\d+)`, 'm').exec(text)?.[1];
    return pid ? [Number(pid)] : [];
  });
  const stateDir = /^state dir: (.+?) \(/m.exec(text)?.[1] ?? path.join(REPO_ROOT, '.tmp/ceph');
  return { healthy, stateDir, pids };
}

/** Parses the `export S3_...=value` lines of `ceph-rgw.sh env`. */
function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/^export (S3_[A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
}

export async function openCephS3(options: { startTimeoutMs: number; log: (line: string) => void }): Promise<CephS3> {
  const before = await status();
  if (!before.healthy) {
    options.log('Ceph RGW is not running: starting it (e2e/services/ceph-rgw.sh install, start)\n');
    await script('install', options.startTimeoutMs);
    await script('start', options.startTimeoutMs);
  }
  const startedHere = !before.healthy;
  const { stateDir } = startedHere ? await status() : before;
  const bucket = `tus-bench-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = { ...parseEnv(await script('env', 30_000)), S3_BUCKET: bucket };
  const client = testS3Client({
    endpoint: env.S3_ENDPOINT ?? 'http://127.0.0.1:7480',
    region: env.S3_REGION ?? 'us-east-1',
    accessKeyId: env.S3_ACCESS_KEY_ID ?? '',
    secretAccessKey: env.S3_SECRET_ACCESS_KEY ?? '',
    forcePathStyle: env.S3_FORCE_PATH_STYLE === 'true',
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    client.destroy();
    if (startedHere) await script('stop', 120_000).catch(() => undefined);
    throw error;
  }

  /** RGW's garbage collector, now rather than in a minute (maybe during the next upload). */
  async function collectGarbage(): Promise<string | undefined> {
    try {
      await run('radosgw-admin', ['-c', path.join(stateDir, 'ceph.conf'), 'gc', 'process', '--include-all'], { timeout: 120_000, killSignal: 'SIGKILL' });
      return undefined;
    } catch (error) {
      return (error as Error).message.split('\n', 1)[0];
    }
  }

  async function empty(): Promise<{ objects: number; multipartUploads: number; gcError?: string }> {
    let multipartUploads = 0;
    let objects = 0;
    for (let KeyMarker: string | undefined, UploadIdMarker: string | undefined; ; ) {
      const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker, UploadIdMarker }));
      for (const { Key, UploadId } of page.Uploads ?? []) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
        multipartUploads++;
      }
      if (!page.IsTruncated) break;
      ({ NextKeyMarker: KeyMarker, NextUploadIdMarker: UploadIdMarker } = page);
    }
    // Deleting while listing shifts the pages, so list from the start until nothing is left.
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      const keys = (page.Contents ?? []).flatMap(({ Key }) => (Key === undefined ? [] : [Key]));
      if (keys.length === 0) break;
      // Single deletes: DeleteObjects wants a Content-MD5 the SDK only sends on request.
      await Promise.all(keys.map((Key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key }))));
      objects += keys.length;
    }
    const gcError = await collectGarbage();
    return { objects, multipartUploads, ...(gcError ? { gcError } : {}) };
  }

  let closing: Promise<void> | undefined;
  return {
    env,
    bucket,
    startedHere,
    stateDir,
    daemonPids: async () => (await status()).pids,
    async objectSize(Key: string) {
      try {
        return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key }))).ContentLength;
      } catch (error) {
        if ((error as { name?: string }).name === 'NotFound') return undefined;
        throw error;
      }
    },
    empty,
    close() {
      closing ??= (async () => {
        try {
          await empty();
          await client.send(new DeleteBucketCommand({ Bucket: bucket }));
        } finally {
          client.destroy();
          if (startedHere) await script('stop', 120_000);
        }
      })();
      return closing;
    },
  };
}
