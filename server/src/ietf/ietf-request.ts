import { HttpError } from '../errors.js';
import type { VersionRules } from './interop-versions.js';
import { parseBoolean, parseInteger } from './structured-fields.js';

const invalid = (message: string) => new HttpError('ERR_INVALID_REQUEST', message);

/**
 * Whether the request says its content ends the upload. Version 3 (-01) says
 * `Upload-Incomplete: ?1` for "more to come", later versions `Upload-Complete: ?0`.
 * Undefined when the header is absent; a malformed value is a 400.
 */
export function readCompleteness(rules: VersionRules, headers: Headers): boolean | undefined | HttpError {
  const value = headers.get(rules.completeness);
  if (value === null) return undefined;
  const parsed = parseBoolean(value);
  if (parsed === undefined) return invalid(`${rules.completeness} must be a structured boolean, ?0 or ?1 (got ${JSON.stringify(value.slice(0, 40))})`);
  return rules.completeness === 'Upload-Incomplete' ? !parsed : parsed;
}

/** Upload-Offset: a non-negative structured Integer. */
export function readOffset(headers: Headers): number | undefined | HttpError {
  const value = headers.get('upload-offset');
  if (value === null) return undefined;
  const offset = parseInteger(value);
  if (offset === undefined || offset < 0) return new HttpError('ERR_INVALID_OFFSET', `Upload-Offset must be a non-negative integer (got ${JSON.stringify(value.slice(0, 40))})`);
  return offset;
}

/** Upload-Length: a non-negative structured Integer, at most the largest upload we take (413 past it). */
export function readUploadLength(headers: Headers, maxUploadSize: number): number | undefined | HttpError {
  const value = headers.get('upload-length');
  if (value === null) return undefined;
  const length = parseInteger(value);
  if (length === undefined || length < 0) return new HttpError('ERR_INVALID_UPLOAD_LENGTH', `Upload-Length must be a non-negative integer (got ${JSON.stringify(value.slice(0, 40))})`);
  if (length > maxUploadSize) return tooLarge(length, maxUploadSize);
  return length;
}

export const tooLarge = (length: number, maxUploadSize: number) =>
  new HttpError('ERR_MAX_SIZE_EXCEEDED', `the upload would be ${length} bytes; the maximum upload size is ${maxUploadSize} bytes`);

export const inconsistentLength = (detail: string) => new HttpError('ERR_INCONSISTENT_LENGTH', detail);

/** Content-Length as a number; undefined for a chunked body or none (Node refuses malformed ones before us). */
export function contentLengthOf(headers: Headers): number | undefined {
  const value = headers.get('content-length');
  if (value === null || !/^[0-9]+$/.test(value.trim())) return undefined;
  return Number(value);
}

/** The media type of Content-Type without parameters, lower-cased. */
export function mediaTypeOf(headers: Headers): string | undefined {
  return headers.get('content-type')?.split(';')[0]?.trim().toLowerCase() || undefined;
}

/**
 * The name a client gave with `Content-Disposition: inline; filename="a.jpg"` (the draft's
 * way to name the representation), for the `filename` metadata when Upload-Metadata has none.
 */
export function dispositionFilename(headers: Headers): string | undefined {
  const value = headers.get('content-disposition');
  if (!value) return undefined;
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(value)?.[1];
  if (extended) {
    try {
      return decodeURIComponent(extended.trim());
    } catch {
      // Fall back to the plain parameter.
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(value);
  const name = plain?.[1]?.replace(/\\(.)/g, '$1') ?? plain?.[2];
  return name && name.length <= 255 ? name : undefined;
}
