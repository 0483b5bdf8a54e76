import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  HeadBucketCommand,
  S3ServiceException,
  type CreateMultipartUploadCommandInput,
  type Part,
  type S3,
} from '@aws-sdk/client-s3';
import { S3Store } from '@tus/s3-store';
import { ERRORS, StreamSplitter, TUS_RESUMABLE, Upload, type KvStore } from '@tus/utils';
import type { S3StorageConfig } from '../config.js';
import { bytesDeleted, DISCARDED_REASON } from './bytes-deleted.js';
import { toHttpError } from './storage-errors.js';
import { ARTIFACT_NAME, artifactContentType, type ArtifactStore, type ByteRange, type UploadStorage } from './types.js';
import { hideCompleteCreationDate, uploadStateOf } from '../uploads/upload-state.js';

/**
 * Part files one upload request may have on local disk at once: the one being filled from
 * the client plus those waiting for or in their upload to S3. When S3 is slower than the
 * client, the request stops reading (backpressure reaches the client) instead of buffering
 * more. Each part is a file under `tempDirectory` (STORAGE_DIR/.s3-parts, not os.tmpdir(),
 * which is often a RAM-backed tmpfs), so one request uses at most
 * PARTS_ON_DISK_PER_REQUEST × S3_PART_SIZE, plus the incomplete trailing part (< 5 MiB)
 * downloaded when it resumes one: with the 8 MiB default, about 45 MiB. Five, not fewer:
 * with at most two parts in flight a 1 GiB PATCH ran ~12% slower than upstream (e2e/bench).
 */
export const PARTS_ON_DISK_PER_REQUEST = 5;

/**
 * Part uploads to S3 at once, across all requests of this process. Only *finished* parts
 * wait for this, never a part still being filled: otherwise a few clients on slow links,
 * each holding a half-filled part, would stall every other upload of the instance
 * (upstream takes its permit before filling a part).
 */
const MAX_CONCURRENT_PART_UPLOADS = 16;

/** Expired ids leave an empty object here (under the prefix) so they keep answering 410. */
const TOMBSTONE_DIR = '.expired/';
/** Ids whose processing reached an end state, as empty objects: the sweeps skip them from a listing. */
const SETTLED_DIR = '.settled/';
/** Files made from an upload (its poster): `<prefix>.artifacts/<id>/<name>`. */
const ARTIFACT_DIR = '.artifacts/';
/** Processing records (`<id>.json`) when no Redis holds them: they outlive STORAGE_DIR with the uploads. */
const STATUS_DIR = '.status/';
/**
 * Partial uploads of a concatenation, as empty objects: a partial expires even once all its
 * bytes arrived, when its multipart upload is complete and no longer listed as unfinished.
 */
const PARTIAL_DIR = '.partial/';
/** S3's smallest part, except the last: a partial this small cannot be copied as a part of the final object. */
const MIN_COPY_PART = 5 * 1024 * 1024;

const NOT_FOUND_CODES = new Set(['NotFound', 'NoSuchKey', 'NoSuchUpload']);

/** An S3 answer that means "no such object or multipart upload" (not "no such bucket"). */
export function isS3NotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { name, Code } = error as { name?: unknown; Code?: unknown };
  return (typeof name === 'string' && NOT_FOUND_CODES.has(name)) || (typeof Code === 'string' && NOT_FOUND_CODES.has(Code));
}

type MetadataValue = Awaited<ReturnType<S3Store['getMetadata']>>;

/** User metadata of `<id>.part`: the number of the part its bytes will begin. */
const NEXT_PART_METADATA = 'tus-next-part';

type TrailingPart = Readonly<{ size: number; nextPart: number | undefined }>;

/**
 * `<id>.part`'s bytes do not follow the parts: they are already inside an uploaded part (a
 * crash kept it after that upload), or they begin a part past a gap (a part before it failed).
 */
const isConsumed = (trailing: TrailingPart, parts: readonly Part[]) =>
  trailing.nextPart !== undefined && trailing.nextPart !== (parts.at(-1)?.PartNumber ?? 0) + 1;

const ignoreNotFound = (error: unknown) => {
  if (!isS3NotFound(error)) throw error;
};

/** One stream of `first` then `second`; destroying it destroys whichever is being read. */
function concat(first: Readable, second: Readable): Readable {
  return Readable.from(
    (async function* () {
      yield* first;
      yield* second;
    })(),
    { objectMode: false },
  );
}

export type S3StorageOptions = Readonly<{
  config: S3StorageConfig;
  uploadExpiryMs: number;
  /** Where `.info` contents are cached; several instances must share one (REDIS_URL). */
  metadataCache?: KvStore<MetadataValue>;
}>;

/**
 * @tus/s3-store with the corrections we need:
 * - every object key carries S3_PREFIX (upstream has no prefix: its key helpers and
 *   several methods use `Key: id` directly, so each of those is overridden here);
 * - a finished upload never expires (`getUpload`, which @tus/server calls, hides its creation
 *   date, as with file storage; `storedUpload` keeps it for the rest of the server);
 * - expired ids leave a tombstone so they answer 410 Gone rather than 404;
 * - `getUpload` answers 404 only for a missing info object, not for every S3 failure
 *   (upstream turns an unreachable endpoint into "not found");
 * - `remove` also deletes `<id>.part` and works on finished uploads (upstream aborts the
 *   multipart upload first and gives up with 404 when it is already completed);
 * - parts are buffered in `tempDirectory` rather than os.tmpdir().
 */
export class PrefixedS3Store extends S3Store {
  constructor(
    private readonly options: S3StorageOptions,
  ) {
    const { config } = options;
    super({
      partSize: config.partSize,
      maxConcurrentPartUploads: MAX_CONCURRENT_PART_UPLOADS,
      expirationPeriodInMilliseconds: options.uploadExpiryMs,
      // Expiry is our sweeper's job (it keeps finished uploads), not bucket lifecycle rules on tags.
      useTags: false,
      // Shared (Redis) for several instances; upstream's default is a per-process memory map.
      ...(options.metadataCache ? { cache: options.metadataCache } : {}),
      s3ClientConfig: {
        bucket: config.bucket,
        region: config.region,
        ...(config.endpoint ? { endpoint: config.endpoint } : {}),
        ...(config.credentials ? { credentials: { ...config.credentials } } : {}),
        forcePathStyle: config.forcePathStyle,
        // Ceph RGW (and other S3-compatibles) reject the SDK's default aws-chunked trailing checksums.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        // Without limits, an S3 that accepts a request and never answers holds the client's
        // request forever. socketTimeout is an idle limit (no byte sent or received), so a big
        // part moving slowly is never cut; the handler's requestTimeout would be a wall-clock
        // limit on sending the body and waiting for the answer (and only warns unless told to throw).
        requestHandler: { connectionTimeout: config.connectTimeoutMs, socketTimeout: config.requestTimeoutMs },
      },
    });
    failFastOnTimeout(this.client);
    // Tus-Extension must not promise expiration when uploads never expire (UPLOAD_EXPIRY=0).
    if (options.uploadExpiryMs <= 0) this.extensions = this.extensions.filter((extension) => extension !== 'expiration');
    // The tus routes verify Upload-Checksum (header or trailer) before any byte reaches the store;
    // concatenation is the upload core's (server/src/uploads/concatenation.ts).
    this.extensions = [...this.extensions, 'checksum', 'checksum-trailer', 'concatenation'];
  }

  get s3() {
    return this.client;
  }

  get bucketName(): string {
    return this.bucket;
  }

  get prefix(): string {
    return this.options.config.prefix;
  }

  /** The key of the finished object (and of its multipart upload). */
  objectKey(id: string): string {
    return `${this.prefix}${id}`;
  }

  tombstoneKey(id: string): string {
    return `${this.prefix}${TOMBSTONE_DIR}${id}`;
  }

  settledKey(id: string): string {
    return `${this.prefix}${SETTLED_DIR}${id}`;
  }

  artifactsPrefix(id: string): string {
    return `${this.prefix}${ARTIFACT_DIR}${id}/`;
  }

  partialKey(id: string): string {
    return `${this.prefix}${PARTIAL_DIR}${id}`;
  }

  statusKey(id: string): string {
    return `${this.prefix}${STATUS_DIR}${id}.json`;
  }

  protected override infoKey(id: string): string {
    return `${this.prefix}${id}.info`;
  }

  protected override partKey(id: string, isIncomplete = false): string {
    return `${this.prefix}${id}${isIncomplete ? '.part' : ''}`;
  }

  /** The info object's contents, or undefined when there is none; other failures throw. */
  async metadataOf(id: string): Promise<MetadataValue | undefined> {
    try {
      return await this.getMetadata(id);
    } catch (error) {
      if (isS3NotFound(error)) return undefined;
      throw error;
    }
  }

  async hasTombstone(id: string): Promise<boolean> {
    return this.hasObject(this.tombstoneKey(id));
  }

  /** Whether the tombstone says DELETE_AFTER_PROCESSING removed the bytes (rather than expiry). */
  async wasDiscarded(id: string): Promise<boolean> {
    try {
      const head = await this.client.headObject({ Bucket: this.bucket, Key: this.tombstoneKey(id) });
      return head.Metadata?.reason === DISCARDED_REASON;
    } catch (error) {
      if (isS3NotFound(error)) return false;
      throw error;
    }
  }

  async hasObject(key: string): Promise<boolean> {
    try {
      await this.client.headObject({ Bucket: this.bucket, Key: key });
      return true;
    } catch (error) {
      if (isS3NotFound(error)) return false;
      throw error;
    }
  }

  override async create(upload: Upload): Promise<Upload> {
    const request: CreateMultipartUploadCommandInput = {
      Bucket: this.bucket,
      Key: this.objectKey(upload.id),
      Metadata: { 'tus-version': TUS_RESUMABLE },
    };
    if (upload.metadata?.contentType) request.ContentType = upload.metadata.contentType;
    if (upload.metadata?.cacheControl) request.CacheControl = upload.metadata.cacheControl;
    upload.creation_date = new Date().toISOString();
    const res = await this.client.createMultipartUpload(request);
    if (!res.UploadId) throw new Error(`S3 CreateMultipartUpload for ${upload.id} returned no UploadId`);
    upload.storage = { type: 's3', path: this.objectKey(upload.id), bucket: this.bucket };
    // Before the info object: an upload listed is never a partial the expiry sweep cannot find.
    if (uploadStateOf(upload).concat.kind === 'partial') {
      await this.client.putObject({ Bucket: this.bucket, Key: this.partialKey(upload.id), Body: Buffer.alloc(0), ContentLength: 0 });
    }
    await this.saveMetadata(upload, res.UploadId);
    // @tus/server never calls write() for an upload declared with 0 bytes, so the
    // multipart upload would stay open and there would be no object to download.
    if (upload.size === 0) {
      await this.finishMultipartUpload(await this.getMetadata(upload.id), []);
      await this.clearCache(upload.id);
    }
    return upload;
  }

  /** For @tus/server: a finished upload without its creation date, so it never expires (no 410, no Upload-Expires). */
  override async getUpload(id: string): Promise<Upload> {
    return hideCompleteCreationDate(await this.storedUpload(id));
  }

  /**
   * The upload as stored, creation date included (hooks, processing and downloads read this).
   * The offset is what S3 holds: the parts of the multipart upload, plus `<id>.part` unless
   * its bytes already went into a part (see `write`). Upstream trusts `<id>.part` blindly.
   */
  async storedUpload(id: string): Promise<Upload> {
    const metadata = await this.metadataOf(id);
    if (!metadata) {
      if (await this.hasTombstone(id)) throw (await this.wasDiscarded(id)) ? bytesDeleted(id) : ERRORS.FILE_NO_LONGER_EXISTS;
      throw ERRORS.FILE_NOT_FOUND;
    }
    const { file } = metadata;
    let parts: Part[];
    try {
      parts = await this.retrieveParts(id);
    } catch (error) {
      // A completed (or aborted) multipart upload has no parts to list: with the info
      // object present, the upload is finished. AWS answers NoSuchUpload, Ceph NoSuchKey.
      if (!isS3NotFound(error)) throw error;
      return new Upload({ ...file, offset: file.size ?? 0, size: file.size, storage: file.storage });
    }
    const trailing = await this.trailingPart(id);
    const carried = trailing && !isConsumed(trailing, parts) ? trailing.size : 0;
    const offset = parts.reduce((sum, part) => sum + (part.Size ?? 0), 0) + carried;
    return new Upload({ ...file, offset, size: file.size, storage: file.storage });
  }

  /** `<id>.part` as it stands: its size, and the number of the part its bytes will begin (when we wrote it). */
  private async trailingPart(id: string): Promise<TrailingPart | undefined> {
    try {
      const head = await this.client.headObject({ Bucket: this.bucket, Key: this.partKey(id, true) });
      const nextPart = Number(head.Metadata?.[NEXT_PART_METADATA]);
      return { size: head.ContentLength ?? 0, nextPart: Number.isInteger(nextPart) && nextPart > 0 ? nextPart : undefined };
    } catch (error) {
      if (isS3NotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Upstream deletes `<id>.part` when the next PATCH *starts* and only re-sends its bytes
   * when that PATCH fills a part: a crash in between loses bytes the server had already
   * acknowledged (the offset goes back). Here `<id>.part` stays until its bytes are safely
   * inside a part (or replaced, in place, by a longer `<id>.part`). A crash after that part
   * went up but before `<id>.part` was deleted leaves a stale `<id>.part`: it names the part
   * its bytes begin, so it is recognised (`isConsumed`) and not counted twice.
   */
  override async write(src: Readable, id: string, offset: number): Promise<number> {
    const metadata = await this.getMetadata(id);
    const parts = await this.retrieveParts(id).catch((error: unknown) => {
      // The multipart upload is completed (AWS NoSuchUpload, Ceph NoSuchKey): the upload is
      // finished, and @tus/server only writes to it for an empty PATCH at its end.
      if (isS3NotFound(error)) return undefined;
      throw error;
    });
    if (!parts) return this.writeNothing(src, metadata.file.size ?? offset);
    const nextPart = (parts.at(-1)?.PartNumber ?? 0) + 1;
    const trailing = await this.trailingPart(id);
    let carried: Awaited<ReturnType<S3Store['downloadIncompletePart']>>;
    if (trailing && isConsumed(trailing, parts)) await this.deleteIncompletePart(id).catch(ignoreNotFound);
    else if (trailing) carried = await this.downloadIncompletePart(id);
    const carriedBytes = carried?.size ?? 0;
    try {
      const body = carried ? concat(carried.createReader({ cleanUpOnEnd: true }), src) : src;
      const sent = await this.sendParts(metadata, body, nextPart, offset - carriedBytes);
      // The carried bytes are in part `nextPart` now, unless they went back into `<id>.part`.
      if (carried && !sent.leftTrailingPart) await this.deleteIncompletePart(id).catch(ignoreNotFound);
      const newOffset = offset + sent.bytes - carriedBytes;
      if (metadata.file.size === newOffset) {
        await this.finishMultipartUpload(metadata, await this.retrieveParts(id));
        await this.completeMetadata(metadata.file);
        await this.clearCache(id);
      }
      return newOffset;
    } finally {
      if (carried) await fsp.rm(carried.path, { force: true }).catch(() => undefined);
    }
  }

  /** A finished upload takes no more bytes: `src` must be empty (its limiter is 0 bytes), and the offset stays at the end. */
  private async writeNothing(src: Readable, end: number): Promise<number> {
    for await (const chunk of src) {
      if ((chunk as Buffer).length > 0) throw ERRORS.ERR_SIZE_EXCEEDED;
    }
    return end;
  }

  override async read(id: string): Promise<Readable> {
    return this.readRange(id);
  }

  /** The finished object's bytes, all or one inclusive range; FILE_NOT_FOUND if there is no object. */
  async readRange(id: string, range?: ByteRange): Promise<Readable> {
    try {
      const data = await this.client.getObject({
        Bucket: this.bucket,
        Key: this.objectKey(id),
        ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
      });
      if (!data.Body) throw new Error(`S3 GetObject for ${id} returned no body`);
      return data.Body as Readable;
    } catch (error) {
      if (isS3NotFound(error)) throw ERRORS.FILE_NOT_FOUND;
      throw error;
    }
  }

  protected override async uploadPart(metadata: MetadataValue, readStream: fs.ReadStream | Readable | Buffer, partNumber: number): Promise<string> {
    const data = await this.client.uploadPart({
      Bucket: this.bucket,
      Key: this.objectKey(metadata.file.id),
      UploadId: metadata['upload-id'],
      PartNumber: partNumber,
      Body: readStream,
      ContentLength: await lengthOf(readStream),
    });
    if (!data.ETag) throw new Error(`S3 UploadPart ${partNumber} of ${metadata.file.id} returned no ETag`);
    return data.ETag;
  }

  /**
   * As upstream, with a Content-Length (without one the SDK streams chunked, which AWS S3
   * rejects for PutObject) and the number of the part these bytes will begin (see `write`).
   */
  protected override async uploadIncompletePart(id: string, readStream: fs.ReadStream | Readable, nextPart?: number): Promise<string> {
    const data = await this.client.putObject({
      Bucket: this.bucket,
      Key: this.partKey(id, true),
      Body: readStream,
      ContentLength: await lengthOf(readStream),
      ...(nextPart !== undefined ? { Metadata: { [NEXT_PART_METADATA]: String(nextPart) } } : {}),
    });
    return data.ETag ?? '';
  }

  protected override async finishMultipartUpload(metadata: MetadataValue, parts: Part[]): Promise<string | undefined> {
    // S3 needs at least one part to complete an upload; a zero-byte upload sends one empty part.
    if (parts.length === 0) parts.push({ ETag: await this.uploadPart(metadata, Buffer.alloc(0), 1), PartNumber: 1 });
    const response = await this.client.completeMultipartUpload({
      Bucket: this.bucket,
      Key: this.objectKey(metadata.file.id),
      UploadId: metadata['upload-id'],
      MultipartUpload: { Parts: parts.map(({ ETag, PartNumber }) => ({ ETag, PartNumber })) },
    });
    return response.Location;
  }

  protected override async retrieveParts(id: string, partNumberMarker?: string): Promise<Part[]> {
    const metadata = await this.getMetadata(id);
    const parts: Part[] = [];
    let marker = partNumberMarker;
    for (;;) {
      const data = await this.client.listParts({
        Bucket: this.bucket,
        Key: this.objectKey(id),
        UploadId: metadata['upload-id'],
        PartNumberMarker: marker,
      });
      parts.push(...(data.Parts ?? []));
      if (!data.IsTruncated || !data.NextPartNumberMarker) break;
      marker = data.NextPartNumberMarker;
    }
    parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    // A part that failed (a bucket past its quota) while later parts of the same request went
    // up leaves a gap, and bytes after it that are not where their part numbers say. Only the
    // run from part 1 counts: the offset stays exact, the next PATCH writes the missing part
    // and overwrites the later ones, and a completion leaves out any still stale.
    const gap = parts.findIndex((part, index) => part.PartNumber !== index + 1);
    return gap === -1 ? parts : parts.slice(0, gap);
  }

  /**
   * Removes every object of the upload: the multipart upload (if still open), the
   * finished object, `<id>.part`, and the info object last, so an interrupted removal
   * is still listed and can be retried.
   */
  override async remove(id: string): Promise<void> {
    const metadata = await this.metadataOf(id);
    if (!metadata) throw ERRORS.FILE_NOT_FOUND;
    await this.removeObjects(id, metadata['upload-id']);
  }

  async removeObjects(id: string, uploadId: string | undefined, { keepArtifacts = false } = {}): Promise<void> {
    const ignoreMissing = (error: unknown) => {
      if (!isS3NotFound(error)) throw error;
    };
    if (uploadId) {
      // A completed upload answers NoSuchUpload (AWS) or NoSuchKey (Ceph): nothing to abort.
      await this.client.abortMultipartUpload({ Bucket: this.bucket, Key: this.objectKey(id), UploadId: uploadId }).catch(ignoreMissing);
    }
    // Single deletes rather than DeleteObjects: some S3-compatibles insist on Content-MD5 for the latter.
    await Promise.all(
      [this.objectKey(id), this.partKey(id, true)].map((Key) => this.client.deleteObject({ Bucket: this.bucket, Key }).catch(ignoreMissing)),
    );
    await this.client.deleteObject({ Bucket: this.bucket, Key: this.infoKey(id) }).catch(ignoreMissing);
    await this.client.deleteObject({ Bucket: this.bucket, Key: this.partialKey(id) }).catch(ignoreMissing);
    if (!keepArtifacts) await this.removeArtifacts(id);
    // Last: a removal cut short leaves at worst a marker without an upload, never a finished
    // upload without its marker (which the reconcile would process again).
    await this.client.deleteObject({ Bucket: this.bucket, Key: this.settledKey(id) }).catch(ignoreMissing);
    await this.clearCache(id);
  }

  /** Every object under the upload's artifacts prefix (a poster: one listing, one delete). */
  async removeArtifacts(id: string): Promise<void> {
    const listed = await this.client.listObjectsV2({ Bucket: this.bucket, Prefix: this.artifactsPrefix(id) });
    await Promise.all(
      (listed.Contents ?? []).map(({ Key }) =>
        this.client.deleteObject({ Bucket: this.bucket, Key }).catch((error: unknown) => {
          if (!isS3NotFound(error)) throw error;
        }),
      ),
    );
  }

  /** The upload's artifacts in the bucket, beside it under the same prefix. */
  artifacts(): ArtifactStore {
    const keyOf = (id: string, name: string) => {
      if (!ARTIFACT_NAME.test(name)) throw new Error(`invalid artifact name ${JSON.stringify(name)}`);
      return `${this.artifactsPrefix(id)}${name}`;
    };
    return {
      write: async (id, name, data) => {
        await this.client.putObject({ Bucket: this.bucket, Key: keyOf(id, name), Body: data, ContentLength: data.byteLength, ContentType: artifactContentType(name) });
      },
      read: async (id, name) => {
        try {
          const data = await this.client.getObject({ Bucket: this.bucket, Key: keyOf(id, name) });
          return data.Body ? Buffer.from(await data.Body.transformToByteArray()) : undefined;
        } catch (error) {
          if (isS3NotFound(error)) return undefined;
          throw error;
        }
      },
      remove: (id) => this.removeArtifacts(id),
    };
  }

  /**
   * Builds a final upload (concatenation) inside S3: each partial's object becomes one part of
   * the final's multipart upload by UploadPartCopy, so no byte passes through this process.
   * S3 takes parts of at least 5 MiB except the last, so partials smaller than that (or
   * empty) answer false and are streamed by the caller instead.
   */
  async copyIntoFinal(finalId: string, parts: readonly Readonly<{ id: string; length: number }>[]): Promise<boolean> {
    const copyable = parts.every(({ length }, index) => length > 0 && (index === parts.length - 1 || length >= MIN_COPY_PART));
    if (!copyable || parts.length > 10_000) return false;
    const metadata = await this.getMetadata(finalId);
    const copied: Part[] = [];
    for (const [index, part] of parts.entries()) {
      const response = await this.client.uploadPartCopy({
        Bucket: this.bucket,
        Key: this.objectKey(finalId),
        UploadId: metadata['upload-id'],
        PartNumber: index + 1,
        CopySource: encodeURI(`${this.bucket}/${this.objectKey(part.id)}`),
      });
      copied.push({ ETag: response.CopyPartResult?.ETag, PartNumber: index + 1 });
    }
    await this.finishMultipartUpload(metadata, copied);
    await this.clearCache(finalId);
    return true;
  }

  /**
   * Upstream changes the cached metadata object in place and saves the info object, which
   * keeps a memory cache right; a shared cache holds a copy, so it is dropped here and the
   * next read takes the new length from S3 (an instance would otherwise never see it).
   */
  override async declareUploadLength(id: string, length: number): Promise<void> {
    await super.declareUploadLength(id, length);
    await this.clearCache(id);
  }

  /** The expiry sweeper (server/src/tus/expiry-sweeper.ts) removes expired uploads, keeping finished ones. */
  override async deleteExpired(): Promise<number> {
    return 0;
  }

  protected override async uniqueTmpFileName(template: string): Promise<string> {
    await fsp.mkdir(this.options.config.tempDirectory, { recursive: true });
    return path.join(this.options.config.tempDirectory, `${template}${randomBytes(10).toString('hex')}`);
  }

  /** Upstream's uploadParts, buffering parts in `tempDirectory` instead of os.tmpdir(). */
  protected override async uploadParts(metadata: MetadataValue, readStream: Readable, currentPartNumber: number, offset: number): Promise<number> {
    return (await this.sendParts(metadata, readStream, currentPartNumber, offset)).bytes;
  }

  /** Upstream's uploadParts, saying also whether it left a trailing `<id>.part`. */
  private async sendParts(
    metadata: MetadataValue,
    readStream: Readable,
    currentPartNumber: number,
    offset: number,
  ): Promise<{ bytes: number; leftTrailingPart: boolean }> {
    const size = metadata.file.size;
    let leftTrailingPart = false;
    const promises: Promise<void>[] = [];
    /** Finished parts of this request not yet on S3 (their files are still on disk). */
    const unsent = new Set<Promise<void>>();
    let pendingChunkFilepath: string | null = null;
    let bytesUploaded = 0;
    let partNumber = currentPartNumber;
    let position = offset;
    await fsp.mkdir(this.options.config.tempDirectory, { recursive: true });

    const splitterStream = new StreamSplitter({ chunkSize: this.calcOptimalPartSize(size), directory: this.options.config.tempDirectory })
      .on('beforeChunkStarted', async () => {
        // The splitter awaits this: no new part file until one of ours has gone to S3.
        while (unsent.size >= PARTS_ON_DISK_PER_REQUEST - 1) await Promise.race(unsent);
      })
      .on('chunkStarted', (filepath: string) => {
        pendingChunkFilepath = filepath;
      })
      .on('chunkFinished', ({ path: chunkPath, size: partSize }: { path: string; size: number }) => {
        pendingChunkFilepath = null;
        const thisPart = partNumber++;
        position += partSize;
        const isFinalPart = size === position;
        const deferred = (async () => {
          const permit = await this.partUploadSemaphore.acquire();
          try {
            const readable = fs.createReadStream(chunkPath);
            if (partSize >= this.minPartSize || isFinalPart) {
              await this.uploadPart(metadata, readable, thisPart);
            } else {
              await this.uploadIncompletePart(metadata.file.id, readable, thisPart);
              leftTrailingPart = true;
            }
            bytesUploaded += partSize;
          } catch (error) {
            splitterStream.destroy(error as Error);
            throw error;
          } finally {
            fsp.rm(chunkPath).catch(() => undefined);
            permit.release().catch(() => undefined);
          }
        })();
        // Failures surface through splitterStream.destroy() and the final Promise.all below.
        const settled = deferred.then(
          () => undefined,
          () => undefined,
        );
        unsent.add(settled);
        void settled.then(() => unsent.delete(settled));
        promises.push(deferred);
      });

    try {
      await pipeline(readStream, splitterStream);
    } catch (error) {
      if (pendingChunkFilepath !== null) await fsp.rm(pendingChunkFilepath, { force: true }).catch(() => undefined);
      promises.push(Promise.reject(error as Error));
    } finally {
      await Promise.allSettled(promises);
      await Promise.all(promises);
    }
    return { bytes: bytesUploaded, leftTrailingPart };
  }
}

/** The byte length of a part body: a buffer's, or the size of the file a read stream reads. */
async function lengthOf(body: fs.ReadStream | Readable | Buffer): Promise<number | undefined> {
  if (Buffer.isBuffer(body)) return body.length;
  if (body instanceof fs.ReadStream) return (await fsp.stat(body.path)).size;
  return undefined;
}

function describeEndpoint(config: S3StorageConfig): string {
  return config.endpoint ?? `AWS S3 (${config.region})`;
}

/**
 * The SDK retries a call that timed out (3 attempts by default), which would triple the time
 * before the client hears 503. A timed-out call is not retried; the others (connection reset,
 * 5xx, throttling) still are. Streaming bodies (part uploads) are never retried by the SDK.
 */
function failFastOnTimeout(client: S3): void {
  const standard = client.config.retryStrategy;
  let strategy: ReturnType<typeof standard> | undefined;
  // The retry middleware asks the client's config for its strategy on every call.
  client.config.retryStrategy = () =>
    (strategy ??= standard().then((inner) => {
      if (!('refreshRetryTokenForRetry' in inner)) return inner;
      return {
        acquireInitialRetryToken: (scope) => inner.acquireInitialRetryToken(scope),
        refreshRetryTokenForRetry: (token, info) =>
          isTimeout(info.error) ? Promise.reject(info.error) : inner.refreshRetryTokenForRetry(token, info),
        recordSuccess: (token) => inner.recordSuccess(token),
      };
    }));
}

/**
 * Times every call of the client (the command's whole life, retries included, until its
 * answer's headers arrive) for whoever observes: the app's metrics. Registered once here;
 * the returned function sets the observer.
 */
function reportCallDurations(client: S3): NonNullable<UploadStorage['observeRequests']> {
  let observer: ((operation: string, seconds: number) => void) | undefined;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (!observer) return next(args);
      const started = performance.now();
      try {
        return await next(args);
      } finally {
        observer(context.commandName ?? 'unknown', (performance.now() - started) / 1000);
      }
    },
    { step: 'initialize', name: 'reportCallDurations' },
  );
  return (next) => {
    observer = next;
  };
}

const isTimeout = (error: unknown) => error instanceof Error && error.name === 'TimeoutError';

const seconds = (ms: number) => `${ms / 1000} s`;

function reason(error: unknown, config: S3StorageConfig): string {
  if (isTimeout(error)) {
    return (error as Error).message.includes('establish a connection')
      ? `no connection within ${seconds(config.connectTimeoutMs)} (S3_CONNECT_TIMEOUT)`
      : `no answer for ${seconds(config.requestTimeoutMs)} (S3_REQUEST_TIMEOUT)`;
  }
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode;
    return `${error.name}${status ? ` (HTTP ${status})` : ''}${error.message && error.message !== error.name && error.message !== 'UnknownError' ? `: ${error.message}` : ''}`;
  }
  return error instanceof Error ? error.message || error.name : String(error);
}

export async function createS3Storage(options: S3StorageOptions): Promise<UploadStorage> {
  const { config } = options;
  // Part buffers left by a process that was killed mid-request were never sent; their bytes
  // are not counted in any offset (offsets come from S3), so they are garbage. One server
  // owns STORAGE_DIR (as with file storage), so nothing else is writing here now.
  await fsp.rm(config.tempDirectory, { recursive: true, force: true });
  await fsp.mkdir(config.tempDirectory, { recursive: true });
  const store = new PrefixedS3Store(options);
  const s3 = store.s3;
  const bucket = config.bucket;
  const observeRequests = reportCallDurations(s3);

  /**
   * Ids of the objects directly under `prefix` whose names end with `suffix`, 1,000 per
   * request. The delimiter keeps deeper keys (another prefix's uploads, tombstones, markers)
   * out of the answer instead of paging through them.
   */
  async function listIds(prefix: string, suffix: string): Promise<string[]> {
    const ids: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await s3.listObjectsV2({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken });
      for (const { Key } of page.Contents ?? []) {
        if (!Key?.endsWith(suffix)) continue;
        const id = Key.slice(prefix.length, Key.length - suffix.length);
        if (id !== '' && !id.includes('/')) ids.push(id);
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return ids;
  }

  return {
    kind: 's3',
    datastore: store,
    observeRequests,
    getUpload: (id) => store.storedUpload(id).catch(toHttpError),
    storedBytes: async (id) => (await store.storedUpload(id).catch(toHttpError)).offset,

    async read(id: string, range?: ByteRange): Promise<Readable> {
      await store.storedUpload(id).catch(toHttpError);
      return store.readRange(id, range).catch(toHttpError);
    },

    listUploadIds: () => listIds(config.prefix, '.info'),

    async listUnsettled(): Promise<string[]> {
      const [ids, settled] = await Promise.all([listIds(config.prefix, '.info'), listIds(`${config.prefix}${SETTLED_DIR}`, '')]);
      const done = new Set(settled);
      return ids.filter((id) => !done.has(id));
    },

    /** Multipart uploads in progress are the unfinished uploads: a finished one completed its own. */
    async listUnfinished(): Promise<string[]> {
      const ids = new Set<string>();
      let KeyMarker: string | undefined;
      let UploadIdMarker: string | undefined;
      do {
        const page = await s3.listMultipartUploads({ Bucket: bucket, Prefix: config.prefix, Delimiter: '/', KeyMarker, UploadIdMarker });
        for (const { Key } of page.Uploads ?? []) {
          const id = Key?.slice(config.prefix.length);
          if (id && !id.includes('/')) ids.add(id);
        }
        [KeyMarker, UploadIdMarker] = page.IsTruncated ? [page.NextKeyMarker, page.NextUploadIdMarker] : [undefined, undefined];
      } while (KeyMarker);
      // Partial uploads expire finished too (their multipart upload is complete, so not listed above).
      for (const id of await listIds(`${config.prefix}${PARTIAL_DIR}`, '')) ids.add(id);
      return [...ids];
    },

    async markSettled(id: string): Promise<void> {
      await s3.putObject({ Bucket: bucket, Key: store.settledKey(id), Body: Buffer.alloc(0), ContentLength: 0 });
    },

    isSettled: (id) => store.hasObject(store.settledKey(id)),

    concatenateInStore: (finalId, parts) => store.copyIntoFinal(finalId, parts).catch(toHttpError),

    records: {
      async read(id: string): Promise<string | undefined> {
        try {
          const data = await s3.getObject({ Bucket: bucket, Key: store.statusKey(id) });
          return await data.Body?.transformToString('utf8');
        } catch (error) {
          if (isS3NotFound(error)) return undefined;
          throw error;
        }
      },
      async write(id: string, text: string): Promise<void> {
        // PutObject replaces an object whole: readers see the old record or the new one.
        await s3.putObject({ Bucket: bucket, Key: store.statusKey(id), Body: text, ContentType: 'application/json' });
      },
      async remove(id: string): Promise<void> {
        await s3.deleteObject({ Bucket: bucket, Key: store.statusKey(id) }).catch(ignoreNotFound);
      },
    },

    async expire(id: string): Promise<void> {
      await s3.putObject({ Bucket: bucket, Key: store.tombstoneKey(id), Body: Buffer.alloc(0), ContentLength: 0 });
      const metadata = await store.metadataOf(id);
      await store.removeObjects(id, metadata?.['upload-id']);
    },

    async discardBytes(id: string): Promise<void> {
      await s3.putObject({ Bucket: bucket, Key: store.tombstoneKey(id), Body: Buffer.alloc(0), ContentLength: 0, Metadata: { reason: DISCARDED_REASON } });
      const metadata = await store.metadataOf(id);
      await store.removeObjects(id, metadata?.['upload-id'], { keepArtifacts: true });
    },

    artifacts: store.artifacts(),

    async checkReady(): Promise<void> {
      try {
        await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (error) {
        throw new Error(`bucket ${bucket} is not reachable at ${describeEndpoint(config)}: ${reason(error, config)}`, { cause: error });
      }
      // Parts are buffered on local disk before they are sent.
      const probe = path.join(config.tempDirectory, `.ready-${randomBytes(6).toString('hex')}`);
      await fsp.mkdir(config.tempDirectory, { recursive: true });
      await fsp.writeFile(probe, 'ok');
      await fsp.rm(probe, { force: true });
    },
  };
}
