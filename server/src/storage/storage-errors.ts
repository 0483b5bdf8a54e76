import { ERRORS } from '@tus/utils';
import { HttpError } from '../errors.js';

/** Stores throw @tus/utils errors for @tus/server; our own routes want the catalogue's. */
export function toHttpError(error: unknown): never {
  if (error === ERRORS.FILE_NOT_FOUND) throw new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found');
  if (error === ERRORS.FILE_NO_LONGER_EXISTS) {
    throw new HttpError('ERR_UPLOAD_GONE', 'the upload expired and its data was removed');
  }
  throw error;
}

/** The file system is full (ENOSPC), or the user's disk quota is (EDQUOT). */
const FULL_DISK_CODES = new Set(['ENOSPC', 'EDQUOT']);

/**
 * What S3-compatible services answer when a write does not fit (AWS itself has no quota):
 * Ceph RGW `QuotaExceeded` (403) for a user or bucket quota, MinIO `XMinioAdminBucketQuotaExceeded`
 * (400) for a bucket quota and `XMinioStorageFull` / `XMinioStorageBackendFull` (507) for full
 * disks, `InsufficientStorage` (507) elsewhere. `EntityTooLarge` is not here: it refuses one
 * object over S3's size limits, which retrying never fixes.
 */
const FULL_S3_CODES = new Set(['QuotaExceeded', 'XMinioAdminBucketQuotaExceeded', 'XMinioStorageFull', 'XMinioStorageBackendFull', 'InsufficientStorage']);

type Failure = { code?: unknown; name?: unknown; Code?: unknown; cause?: unknown; $metadata?: { httpStatusCode?: unknown } };

/**
 * Whether an error means storage has no room for the bytes: a full disk or quota under
 * STORAGE_DIR (data, part buffers, the queue) or a bucket past its quota. Looks through
 * `cause` chains (the SDKs wrap). Check it before `isServiceUnavailable`, which counts
 * every S3 5xx (MinIO's 507 included) as an outage.
 */
export function isStorageFull(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth += 1) {
    const { code, name, Code, cause, $metadata } = current as Failure;
    if (typeof code === 'string' && FULL_DISK_CODES.has(code)) return true;
    if ([name, Code].some((value) => typeof value === 'string' && FULL_S3_CODES.has(value))) return true;
    if ($metadata?.httpStatusCode === 507) return true;
    current = cause;
  }
  return false;
}

/** Seconds a client should wait before trying again: an operator has to free space, which takes a while. */
export const STORAGE_FULL_RETRY_AFTER_S = 30;

/**
 * The answer when storage is full. The bytes stored before the failure stay counted (HEAD
 * says how many), so the client resumes from there once space is back.
 */
export const storageFull = (message = 'storage is full; the bytes already received are kept: retry later and resume from the offset HEAD reports') =>
  new HttpError('ERR_STORAGE_FULL', message, { 'Retry-After': String(STORAGE_FULL_RETRY_AFTER_S) });
