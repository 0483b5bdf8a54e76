import { Metadata } from '@tus/utils';
import { HttpError } from '../errors.js';
import { essence } from '../media-types.js';
import { formatBytes } from '../units/byte-size.js';
import { checkConcatSyntax } from './concat-header.js';

export const TUS_VERSION = '1.0.0';

const OFFSET_STREAM = 'application/offset+octet-stream';

/** Whether the Content-Type is tus' upload body type (media type parameters ignored). */
export function isOffsetStream(headers: Headers): boolean {
  const contentType = headers.get('content-type');
  return contentType !== null && essence(contentType) === OFFSET_STREAM;
}

/** Where a request points below the tus path. */
export type TusTarget = { kind: 'collection' } | { kind: 'upload'; id: string };

const COLLECTION_METHODS = ['POST', 'OPTIONS'] as const;
const UPLOAD_METHODS = ['HEAD', 'PATCH', 'DELETE', 'GET', 'OPTIONS'] as const;

export function allowedMethods(target: TusTarget): readonly string[] {
  return target.kind === 'collection' ? COLLECTION_METHODS : UPLOAD_METHODS;
}

/**
 * "The X-HTTP-Method-Override request header MUST be a string which MUST be interpreted
 * as the request's method by the Server, if the header is presented."
 */
export function effectiveMethod(method: string, headers: Headers): string {
  const override = headers.get('x-http-method-override');
  return (override ? override.trim() : method).toUpperCase();
}

/** "The value MUST be a non-negative integer." (Upload-Offset, Upload-Length) */
function parseNonNegativeInteger(value: string): number | undefined {
  if (!/^\d{1,16}$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

function tooLarge(size: number, max: number, what: string): HttpError {
  return new HttpError(
    'ERR_MAX_SIZE_EXCEEDED',
    `${what} is ${formatBytes(size)} (${size} bytes); the maximum upload size is ${formatBytes(max)} (${max} bytes)`,
  );
}

/**
 * The protocol rules checked from headers alone, before @tus/server sees the request.
 * Some are enforced here because @tus/server 2.x answers them differently from the spec
 * (412 without Tus-Version, 400 instead of 415, no method override), the rest so that
 * every rejection carries a clear `ERR_CODE: message` body.
 * Returns the error to answer with, or undefined when the request may proceed.
 */
export function checkTusRequest(
  method: string,
  target: TusTarget,
  headers: Headers,
  maxUploadSize: number,
  maxMetadataBytes = Number.POSITIVE_INFINITY,
): HttpError | undefined {
  if (!allowedMethods(target).includes(method)) {
    return new HttpError('ERR_METHOD_NOT_ALLOWED', `method ${method.slice(0, 32)} is not allowed here`, {
      Allow: allowedMethods(target).join(', '),
    });
  }
  // Downloads are plain HTTP, and "The Tus-Resumable header MUST be included in every
  // request and response except for OPTIONS requests."
  if (method === 'GET' || method === 'OPTIONS') return undefined;

  // "If the version specified by the Client is not supported by the Server, it MUST respond
  // with the 412 Precondition Failed status and MUST include the Tus-Version header into the
  // response. In addition, the Server MUST NOT process the request."
  const version = headers.get('tus-resumable');
  if (version !== TUS_VERSION) {
    const said = version === null ? 'the Tus-Resumable header is missing' : `Tus-Resumable ${version.slice(0, 32)} is not supported`;
    return new HttpError('ERR_UNSUPPORTED_VERSION', `${said}; this server speaks tus ${TUS_VERSION}`, { 'Tus-Version': TUS_VERSION });
  }

  switch (method) {
    case 'POST':
      return checkCreation(headers, maxUploadSize, maxMetadataBytes);
    case 'PATCH':
      return checkPatch(headers, maxUploadSize);
    default:
      return undefined;
  }
}

function checkUploadLength(headers: Headers, maxUploadSize: number): HttpError | undefined {
  const raw = headers.get('upload-length');
  if (raw === null) return undefined;
  const length = parseNonNegativeInteger(raw.trim());
  if (length === undefined) {
    if (/^\d+$/.test(raw.trim())) {
      return new HttpError('ERR_MAX_SIZE_EXCEEDED', `Upload-Length ${raw.trim().slice(0, 64)} is over the maximum upload size of ${formatBytes(maxUploadSize)} (${maxUploadSize} bytes)`);
    }
    return new HttpError('ERR_INVALID_UPLOAD_LENGTH', `Upload-Length must be a non-negative integer, got "${raw.slice(0, 64)}"`);
  }
  // "If the length of the upload exceeds the maximum, which MAY be specified using the
  // Tus-Max-Size header, the Server MUST respond with the 413 Request Entity Too Large status."
  if (length > maxUploadSize) return tooLarge(length, maxUploadSize, 'the upload');
  return undefined;
}

function checkCreation(headers: Headers, maxUploadSize: number, maxMetadataBytes: number): HttpError | undefined {
  const concat = headers.get('upload-concat');
  const concatError = concat === null ? undefined : checkConcatSyntax(concat);
  if (concatError) return concatError;
  const length = headers.get('upload-length');
  const defer = headers.get('upload-defer-length');
  if (concat !== null && concat.trim() !== 'partial') {
    // "The Client MUST NOT include the Upload-Length header in the final upload creation":
    // its length is the sum of its partial uploads, and its bytes are theirs.
    if (length !== null || defer !== null) return new HttpError('ERR_INVALID_CONCAT', "a final upload's length is the sum of its partial uploads: send no Upload-Length or Upload-Defer-Length");
    if (isOffsetStream(headers)) return new HttpError('ERR_INVALID_CONCAT', 'a final upload takes no bytes of its own: send no body');
  } else {
    // "The Upload-Defer-Length ... value MUST be 1."
    if (defer !== null && defer.trim() !== '1') {
      return new HttpError('ERR_INVALID_UPLOAD_LENGTH', `Upload-Defer-Length must be 1, got "${defer.slice(0, 64)}"`);
    }
    // "The Client MUST include either the Upload-Length or the Upload-Defer-Length header."
    if ((length === null) === (defer === null)) {
      return new HttpError('ERR_INVALID_UPLOAD_LENGTH', 'send exactly one of Upload-Length or Upload-Defer-Length: 1');
    }
    const lengthError = checkUploadLength(headers, maxUploadSize);
    if (lengthError) return lengthError;
  }

  const metadata = headers.get('upload-metadata');
  if (metadata !== null && Buffer.byteLength(metadata) > maxMetadataBytes) {
    return new HttpError(
      'ERR_INVALID_UPLOAD_METADATA',
      `Upload-Metadata is ${formatBytes(Buffer.byteLength(metadata))}; the limit is ${formatBytes(maxMetadataBytes)}`,
    );
  }
  if (metadata !== null && metadata.trim() !== '') {
    try {
      Metadata.parse(metadata);
    } catch {
      return new HttpError(
        'ERR_INVALID_UPLOAD_METADATA',
        'Upload-Metadata must be comma-separated "key base64value" pairs with unique keys free of spaces and commas',
      );
    }
  }
  // creation-with-upload: a body that cannot fit is refused before a byte is stored.
  const bodyError = checkBodyLength(headers, maxUploadSize, 0);
  if (bodyError) return bodyError;
  // ...and before the upload is created, which @tus/server would leave behind without a Location.
  const carriesBytes = isOffsetStream(headers);
  const contentLength = parseNonNegativeInteger(headers.get('content-length')?.trim() ?? '');
  const uploadLength = length === null ? undefined : parseNonNegativeInteger(length.trim());
  if (carriesBytes && contentLength !== undefined && uploadLength !== undefined && contentLength > uploadLength) {
    return new HttpError('ERR_UPLOAD_SIZE_EXCEEDED', `the request body (${contentLength} bytes) is longer than Upload-Length ${uploadLength}`);
  }
  return undefined;
}

function checkPatch(headers: Headers, maxUploadSize: number): HttpError | undefined {
  // "All PATCH requests MUST use Content-Type: application/offset+octet-stream, otherwise
  // the server SHOULD return a 415 Unsupported Media Type status."
  const contentType = headers.get('content-type');
  if (!isOffsetStream(headers)) {
    return new HttpError(
      'ERR_INVALID_CONTENT_TYPE',
      `PATCH requests must use Content-Type: application/offset+octet-stream, got ${contentType === null ? 'none' : `"${contentType.slice(0, 64)}"`}`,
    );
  }
  // "The Upload-Offset header's value MUST be equal to the current offset of the resource."
  const rawOffset = headers.get('upload-offset');
  if (rawOffset === null) {
    return new HttpError('ERR_INVALID_OFFSET', 'the Upload-Offset header is required on PATCH');
  }
  const offset = parseNonNegativeInteger(rawOffset.trim());
  if (offset === undefined) {
    return new HttpError('ERR_INVALID_OFFSET', `Upload-Offset must be a non-negative integer, got "${rawOffset.slice(0, 64)}"`);
  }
  if (offset > maxUploadSize) {
    return new HttpError('ERR_INVALID_OFFSET', `Upload-Offset ${offset} is past the maximum upload size of ${formatBytes(maxUploadSize)}`);
  }
  const lengthError = checkUploadLength(headers, maxUploadSize);
  if (lengthError) return lengthError;

  const hasBodyLength = headers.get('content-length') !== null || headers.get('transfer-encoding') !== null;
  if (!hasBodyLength && headers.get('upload-length') === null) {
    return new HttpError('ERR_CONTENT_LENGTH_REQUIRED', 'a PATCH needs a body with Content-Length or Transfer-Encoding: chunked');
  }
  return checkBodyLength(headers, maxUploadSize, offset);
}

/** A declared body that would carry the upload past the limit is refused up front. */
function checkBodyLength(headers: Headers, maxUploadSize: number, offset: number): HttpError | undefined {
  const raw = headers.get('content-length');
  if (raw === null) return undefined;
  const length = parseNonNegativeInteger(raw.trim());
  if (length === undefined) return new HttpError('ERR_INVALID_REQUEST', `Content-Length must be a non-negative integer`);
  if (offset + length > maxUploadSize) return tooLarge(offset + length, maxUploadSize, 'the upload with this request body');
  return undefined;
}
