import { HttpError } from '../errors.js';
import { CHECKSUM_ALGORITHMS, CHECKSUM_DIGEST_BYTES, isChecksumAlgorithm, type ChecksumAlgorithm } from './checksum-algorithms.js';

/** What a client declared about a request body: the algorithm and the digest it expects. */
export type DeclaredChecksum = Readonly<{ algorithm: ChecksumAlgorithm; digest: Buffer }>;

const quoted = (value: string) => `"${value.slice(0, 64)}${value.length > 64 ? '…' : ''}"`;

/**
 * Reads an `Upload-Checksum` value (a header, or the trailer of a chunked body).
 *
 * "The `Upload-Checksum` request header contains information about the checksum of the
 * current body payload. The header MUST consist of the name of the used checksum algorithm
 * and the Base64 encoded checksum separated by a space."
 *
 * Returns the error to answer with (400) when the value is malformed or names an algorithm
 * we do not have: "the Server MAY respond with [...] `400 Bad Request` if the checksum
 * algorithm is not supported by the server".
 */
export function parseUploadChecksum(value: string, where = 'Upload-Checksum'): DeclaredChecksum | HttpError {
  const trimmed = value.trim();
  const space = trimmed.indexOf(' ');
  if (space <= 0 || trimmed.indexOf(' ', space + 1) !== -1) {
    return new HttpError('ERR_INVALID_CHECKSUM', `${where} must be "<algorithm> <base64 digest>", separated by one space; got ${quoted(value)}`);
  }
  const name = trimmed.slice(0, space);
  const encoded = trimmed.slice(space + 1);
  if (!isChecksumAlgorithm(name)) {
    return new HttpError('ERR_UNSUPPORTED_CHECKSUM_ALGORITHM', `checksum algorithm ${quoted(name)} is not supported; use one of ${CHECKSUM_ALGORITHMS.join(', ')}`);
  }
  const digest = Buffer.from(encoded, 'base64');
  // Buffer skips characters that are not base64: only a value that encodes back to itself
  // (padding optional) is one.
  const canonical = digest.toString('base64');
  if (encoded !== canonical && encoded !== canonical.replace(/=+$/, '')) {
    return new HttpError('ERR_INVALID_CHECKSUM', `the ${name} digest in ${where} is not valid base64: ${quoted(encoded)}`);
  }
  const expected = CHECKSUM_DIGEST_BYTES[name];
  if (digest.byteLength !== expected) {
    return new HttpError('ERR_INVALID_CHECKSUM', `a ${name} digest is ${expected} bytes (${Math.ceil(expected / 3) * 4} base64 characters); ${where} carries ${digest.byteLength}`);
  }
  return { algorithm: name, digest };
}

/**
 * Whether the request announces its checksum as a trailer: "Following RFC 7230 they MUST be
 * announced using the `Trailer` header and are only allowed in chunked transfers."
 */
export function announcesChecksumTrailer(headers: Headers): boolean {
  const trailer = headers.get('trailer');
  return trailer !== null && trailer.split(',').some((name) => name.trim().toLowerCase() === 'upload-checksum');
}
