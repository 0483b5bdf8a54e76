import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type {
  S3Client} from '@aws-sdk/client-s3';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand
} from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import { s3ServerEnv } from '../services/s3-env.js';
import { STORAGE_KINDS, type StorageKind } from '../../server/src/config.js';
import type { ProvidedS3 } from '../services/s3-global-setup.js';
import type { Scope, StartOptions } from './server-process.js';
import { testS3Client } from '../services/s3-env.js';

/**
 * The storage kinds the end-to-end suites run against: every kind the server has, so a
 * new kind fails to compile here (createTestStore's switch) until its tests can run.
 */
export const STORE_KINDS = STORAGE_KINDS;
export type StoreKind = StorageKind;

/** S3 listings are paged by 1000; no test stores anywhere near this many pages. */
const MAX_PAGES = 100;

/** An open multipart upload, as `multipart:<id>` in listings, so one list shows everything S3 holds. */
const MULTIPART = 'multipart:';

/**
 * What one test's servers store, whichever the kind: the environment that selects it and
 * a look at what is stored, from outside the server. It owns a STORAGE_DIR (and on S3 a
 * fresh S3_PREFIX in the run's bucket, so tests sharing the bucket never see each other's
 * objects): a server started again with `startOptions()` finds the same uploads.
 */
export interface TestStore {
  readonly kind: StoreKind;
  /** STORAGE_DIR: the uploads with file storage; with S3 the local state (.queue, .status, .s3-parts). */
  readonly storageDir: string;
  /** The server environment that selects this store (nothing for file storage). */
  readonly env: Readonly<Record<string, string>>;
  /** Options for Scope.server(): this store's directory and environment, plus `env`. */
  startOptions(env?: Readonly<Record<string, string>>): StartOptions;
  /**
   * Everything stored for uploads, relative to STORAGE_DIR or S3_PREFIX, sorted: data and
   * records (`<id>`, `<id>.json`; on S3 `<id>`, `<id>.info`, `<id>.part`, then `multipart:<id>`
   * for each open multipart upload). Bookkeeping (.queue, .status, .expired, part buffers) is left out.
   */
  list(): Promise<string[]>;
  /** The entries of list() that belong to one upload. */
  objectsOf(id: string): Promise<string[]>;
  /** What objectsOf() shows for a finished upload: its data and its record, nothing else. */
  finishedObjects(id: string): string[];
  /**
   * How many bytes of an upload the store holds, counted by the store itself: the data
   * file's size; on S3 the parts S3 lists plus `<id>.part`, or the finished object's size.
   */
  storedBytes(id: string): Promise<number>;
  /**
   * Bytes of an upload that have reached the server: storedBytes(), plus on S3 the part
   * buffers in STORAGE_DIR/.s3-parts (bytes on their way to S3). Those buffers are not per
   * upload: use this while one upload alone is being written.
   */
  bytesArrived(id: string): Promise<number>;
  /**
   * The stored bytes of an upload: the data file; on S3 the finished object, or `<id>.part`
   * while no whole part has been sent (S3 serves no bytes of the parts of an open upload).
   */
  readStored(id: string): Promise<Buffer>;
}

/** A store of `kind` for one test or one describe block; what it opens is closed by `scope`. */
export async function createTestStore(kind: StoreKind, scope: Scope): Promise<TestStore> {
  const storageDir = await scope.tempDir(`tus-e2e-${kind}-storage-`);
  switch (kind) {
    case 'file':
      return fileStore(storageDir);
    case 's3': {
      const bucket = new S3Inspector(inject('s3'));
      scope.defer(() => bucket.close());
      return s3Store(storageDir, bucket, `e2e-${randomBytes(6).toString('hex')}/`);
    }
    default: {
      const unknown: never = kind;
      throw new Error(`no e2e store for storage kind ${String(unknown)}`);
    }
  }
}

function startOptionsFor(storageDir: string, base: Readonly<Record<string, string>>) {
  return (env: Readonly<Record<string, string>> = {}): StartOptions => ({ storageDir, env: { ...base, ...env } });
}

const belongsTo = (id: string) => (name: string) => name === id || name.startsWith(`${id}.`) || name === `${MULTIPART}${id}`;

function fileStore(storageDir: string): TestStore {
  const list = async () => (await fsp.readdir(storageDir)).filter((name) => !name.startsWith('.')).sort();
  return {
    kind: 'file',
    storageDir,
    env: {},
    startOptions: startOptionsFor(storageDir, {}),
    list,
    objectsOf: async (id) => (await list()).filter(belongsTo(id)),
    finishedObjects: (id) => [id, `${id}.json`],
    storedBytes: async (id) => (await fsp.stat(path.join(storageDir, id))).size,
    bytesArrived: async (id) => (await fsp.stat(path.join(storageDir, id))).size,
    readStored: (id) => fsp.readFile(path.join(storageDir, id)),
  };
}

function s3Store(storageDir: string, bucket: S3Inspector, prefix: string): TestStore {
  const env = s3ServerEnv(bucket.config, { S3_PREFIX: prefix });
  const listUnder = async (under: string) => {
    const keys = (await bucket.keys(under)).map((key) => key.slice(prefix.length));
    const uploads = (await bucket.multipartUploads(under)).map((upload) => `${MULTIPART}${upload.key.slice(prefix.length)}`);
    // Deeper keys are bookkeeping (.expired/<id> tombstones) or not ours. Open uploads come last.
    return [...keys.sort(), ...uploads.sort()].filter((name) => !name.includes('/'));
  };
  const openUpload = async (id: string) => (await bucket.multipartUploads(`${prefix}${id}`)).find((upload) => upload.key === `${prefix}${id}`);
  const storedBytes = async (id: string) => {
    const open = await openUpload(id);
    if (!open) {
      const size = await bucket.objectSize(`${prefix}${id}`);
      if (size === undefined) throw new Error(`S3 holds neither an upload nor an object for ${prefix}${id}`);
      return size;
    }
    const parts = await bucket.partSizes(open.key, open.uploadId);
    return parts.reduce((sum, size) => sum + size, 0) + ((await bucket.objectSize(`${prefix}${id}.part`)) ?? 0);
  };
  return {
    kind: 's3',
    storageDir,
    env,
    startOptions: startOptionsFor(storageDir, env),
    list: () => listUnder(prefix),
    objectsOf: async (id) => (await listUnder(`${prefix}${id}`)).filter(belongsTo(id)),
    finishedObjects: (id) => [id, `${id}.info`],
    storedBytes,
    bytesArrived: async (id) => (await storedBytes(id)) + (await directorySize(path.join(storageDir, '.s3-parts'))),
    async readStored(id) {
      const open = await openUpload(id);
      if (!open) return bucket.read(`${prefix}${id}`);
      if ((await bucket.partSizes(open.key, open.uploadId)).length > 0) {
        throw new Error(`the parts of ${prefix}${id} cannot be read back before the upload is finished`);
      }
      return (await bucket.objectSize(`${prefix}${id}.part`)) === undefined ? Buffer.alloc(0) : bucket.read(`${prefix}${id}.part`);
    },
  };
}

/** The total size of the files in a directory (files may vanish meanwhile); 0 if there is none. */
async function directorySize(dir: string): Promise<number> {
  const names = await fsp.readdir(dir).catch(() => []);
  const sizes = await Promise.all(names.map((name) => fsp.stat(path.join(dir, name)).then((stat) => stat.size, () => 0)));
  return sizes.reduce((sum, size) => sum + size, 0);
}

const isNotFound = (error: unknown) => (error as { name?: string }).name === 'NotFound' || (error as { name?: string }).name === 'NoSuchKey';

/** A look into the run's bucket (e2e/services/s3-global-setup.ts), from outside the server. */
export class S3Inspector {
  private readonly client: S3Client;

  constructor(readonly config: ProvidedS3) {
    this.client = testS3Client(config);
  }

  /** Every object key under `prefix`. */
  async keys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let ContinuationToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const listed = await this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken }));
      keys.push(...(listed.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key])));
      ContinuationToken = listed.IsTruncated ? listed.NextContinuationToken : undefined;
      if (!ContinuationToken) return keys;
    }
    throw new Error(`more than ${MAX_PAGES} pages of objects under ${prefix}`);
  }

  /** Every multipart upload still open (neither completed nor aborted) under `prefix`. */
  async multipartUploads(prefix: string): Promise<{ key: string; uploadId: string }[]> {
    const uploads: { key: string; uploadId: string }[] = [];
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const listed = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.config.bucket, Prefix: prefix, KeyMarker, UploadIdMarker }));
      for (const { Key, UploadId } of listed.Uploads ?? []) if (Key !== undefined && UploadId !== undefined) uploads.push({ key: Key, uploadId: UploadId });
      if (!listed.IsTruncated) return uploads;
      KeyMarker = listed.NextKeyMarker;
      UploadIdMarker = listed.NextUploadIdMarker;
    }
    throw new Error(`more than ${MAX_PAGES} pages of multipart uploads under ${prefix}`);
  }

  /** The sizes of the parts S3 holds for an open multipart upload, in part order. */
  async partSizes(key: string, uploadId: string): Promise<number[]> {
    const sizes: number[] = [];
    let PartNumberMarker: string | undefined;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const listed = await this.client.send(new ListPartsCommand({ Bucket: this.config.bucket, Key: key, UploadId: uploadId, PartNumberMarker }));
      sizes.push(...(listed.Parts ?? []).map((part) => part.Size ?? 0));
      if (!listed.IsTruncated || !listed.NextPartNumberMarker) return sizes;
      PartNumberMarker = listed.NextPartNumberMarker;
    }
    throw new Error(`more than ${MAX_PAGES} pages of parts of ${key}`);
  }

  /** An object's size, or undefined when there is no such object. */
  async objectSize(key: string): Promise<number | undefined> {
    try {
      return (await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }))).ContentLength ?? 0;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async read(key: string): Promise<Buffer> {
    const got = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }));
    return Buffer.from((await got.Body?.transformToByteArray()) ?? []);
  }

  close(): void {
    this.client.destroy();
  }
}
