import { ERRORS } from '@tus/utils';
import { HttpError, isServiceUnavailable, serviceUnavailable, type ErrorCode } from '../errors.js';
import { isStorageFull, storageFull } from '../storage/storage-errors.js';
import { formatBytes } from '../units/byte-size.js';

type TusErrorName = keyof typeof ERRORS;

/** @tus/utils error → our catalogue. Anything not listed is an internal error. */
const TRANSLATIONS: Partial<Record<TusErrorName, [ErrorCode, string]>> = {
  MISSING_OFFSET: ['ERR_INVALID_OFFSET', 'the Upload-Offset header is required'],
  ABORTED: ['ERR_UPLOAD_INTERRUPTED', 'the upload was interrupted by another request for the same upload; resume from HEAD'],
  INVALID_TERMINATION: ['ERR_INVALID_TERMINATION', 'a finished upload cannot be terminated'],
  ERR_LOCK_TIMEOUT: ['ERR_UPLOAD_LOCKED', 'another request holds this upload; retry shortly'],
  INVALID_CONTENT_TYPE: ['ERR_INVALID_CONTENT_TYPE', 'PATCH requests must use Content-Type: application/offset+octet-stream'],
  FILE_NOT_FOUND: ['ERR_UPLOAD_NOT_FOUND', 'upload not found'],
  INVALID_OFFSET: ['ERR_MISMATCHED_OFFSET', "Upload-Offset does not match the upload's current offset; send HEAD to learn it"],
  FILE_NO_LONGER_EXISTS: ['ERR_UPLOAD_GONE', 'the upload expired and its data was removed; start a new upload'],
  INVALID_LENGTH: ['ERR_INVALID_UPLOAD_LENGTH', 'Upload-Length is missing, already set, or smaller than the bytes already received'],
  INVALID_METADATA: ['ERR_INVALID_UPLOAD_METADATA', 'Upload-Metadata is malformed'],
  UNSUPPORTED_CONCATENATION_EXTENSION: ['ERR_UNSUPPORTED_EXTENSION', 'the concatenation extension is not supported by this server'],
  UNSUPPORTED_CREATION_DEFER_LENGTH_EXTENSION: ['ERR_UNSUPPORTED_EXTENSION', 'deferred upload length is not supported by this storage'],
  UNSUPPORTED_EXPIRATION_EXTENSION: ['ERR_UNSUPPORTED_EXTENSION', 'expiration is not supported by this storage'],
};

type TusError = { status_code?: number; body?: string };

function tusErrorName(error: unknown): TusErrorName | undefined {
  if (!error || typeof error !== 'object') return undefined;
  const { status_code, body } = error as TusError;
  if (status_code === undefined || body === undefined) return undefined;
  for (const [name, known] of Object.entries(ERRORS) as [TusErrorName, TusError][]) {
    if (known === error || (known.status_code === status_code && known.body === body)) return name;
  }
  return undefined;
}

/** What the request said about sizes, for a 413 that names both numbers. */
function requestedSize(headers: Headers): number | undefined {
  const length = Number(headers.get('upload-length'));
  if (headers.get('upload-length') !== null && Number.isSafeInteger(length)) return length;
  const offset = Number(headers.get('upload-offset') ?? 0);
  const body = Number(headers.get('content-length'));
  if (headers.get('content-length') !== null && Number.isSafeInteger(offset + body)) return offset + body;
  return undefined;
}

/**
 * Translates what @tus/server threw into an HttpError for the client, or undefined when
 * it is not a known protocol error (the caller logs it and answers a generic 500).
 */
export function translateTusError(error: unknown, headers: Headers, maxUploadSize: number): HttpError | undefined {
  if (error instanceof HttpError) return error;
  // ENOSPC under STORAGE_DIR, a bucket past its quota: 507, before the 5xx check below calls it an outage.
  if (isStorageFull(error)) return storageFull();
  const name = tusErrorName(error);
  if (name === 'ERR_MAX_SIZE_EXCEEDED') {
    const size = requestedSize(headers);
    const limit = `the maximum upload size is ${formatBytes(maxUploadSize)} (${maxUploadSize} bytes)`;
    return new HttpError(
      'ERR_MAX_SIZE_EXCEEDED',
      size === undefined ? `the request body ran past the upload's Upload-Length or the size limit; ${limit}; bytes beyond it were not stored` : `the upload would be ${formatBytes(size)} (${size} bytes); ${limit}`,
    );
  }
  if (name === 'FILE_WRITE_ERROR') {
    // The bytes written before the failure are kept; a retry resumes after them.
    return new HttpError('ERR_STORAGE_UNAVAILABLE', 'storage could not write the upload; retry shortly', { 'Retry-After': '5' });
  }
  if (name === 'ERR_SIZE_EXCEEDED') {
    return new HttpError('ERR_UPLOAD_SIZE_EXCEEDED', "the request body runs past the upload's declared Upload-Length");
  }
  const translation = name && TRANSLATIONS[name];
  if (translation) return new HttpError(translation[0], translation[1]);
  if (isServiceUnavailable(error)) return serviceUnavailable();
  return undefined;
}
