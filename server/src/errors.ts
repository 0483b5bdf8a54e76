/**
 * The one catalogue of errors the server answers with. Bodies follow tusd's
 * `ERR_CODE: message` shape so clients and operators can match on a stable code.
 */
export const ERROR_CODES = {
  ERR_UNSUPPORTED_VERSION: 412,
  ERR_INVALID_CONTENT_TYPE: 415,
  ERR_INVALID_UPLOAD_LENGTH: 400,
  ERR_INVALID_OFFSET: 400,
  ERR_INVALID_UPLOAD_METADATA: 400,
  /** A declared digest of the whole upload (Repr-Digest, metadata sha256) that is malformed or contradicts itself. */
  ERR_INVALID_DIGEST: 400,
  /** The whole upload's sha-256 is not the one declared at creation; tus' checksum status, 460. */
  ERR_DIGEST_MISMATCH: 460,
  ERR_INVALID_REQUEST: 400,
  ERR_CONTENT_LENGTH_REQUIRED: 411,
  ERR_UNSUPPORTED_EXTENSION: 400,
  ERR_UPLOAD_NOT_FOUND: 404,
  ERR_UPLOAD_GONE: 410,
  ERR_UPLOAD_NOT_FINISHED: 409,
  ERR_MISMATCHED_OFFSET: 409,
  ERR_UPLOAD_LOCKED: 423,
  ERR_UPLOAD_INTERRUPTED: 400,
  ERR_INVALID_TERMINATION: 400,
  ERR_MAX_SIZE_EXCEEDED: 413,
  ERR_UPLOAD_SIZE_EXCEEDED: 413,
  ERR_RANGE_NOT_SATISFIABLE: 416,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_NOT_FOUND: 404,
  ERR_UPLOAD_REJECTED: 400,
  ERR_MISSING_METADATA: 400,
  ERR_TYPE_NOT_ALLOWED: 415,
  ERR_UPLOAD_STOPPED: 400,
  /** A per-subject limit (uploads in progress, creations per minute, unfinished bytes, event streams); Retry-After says when to try again. */
  ERR_RATE_LIMITED: 429,
  ERR_UNSUPPORTED_CHECKSUM_ALGORITHM: 400,
  ERR_INVALID_CHECKSUM: 400,
  /** tus' own status, "460 Checksum Mismatch" (checksum extension). */
  ERR_CHECKSUM_MISMATCH: 460,
  /** An Upload-Concat header, or the uploads it names, that cannot make a final upload. */
  ERR_INVALID_CONCAT: 400,
  /** "The Server MUST respond with 403 Forbidden to PATCH requests against a final upload URL." */
  ERR_MODIFY_FINAL: 403,
  /** An append with the protocol that did not create the upload (tus PATCH to an IETF upload, or the reverse). */
  ERR_WRONG_PROTOCOL: 403,
  /** An Upload-Draft-Interop-Version this server does not speak; the message names those it does. */
  ERR_UNSUPPORTED_INTEROP_VERSION: 400,
  /** IETF: Upload-Length, Content-Length, Upload-Complete and the bytes sent disagree on the length. */
  ERR_INCONSISTENT_LENGTH: 400,
  /** IETF: bytes sent to an upload that is already complete. */
  ERR_UPLOAD_COMPLETED: 400,
  ERR_HOOK_FAILED: 502,
  ERR_HOOK_TIMEOUT: 504,
  ERR_SERVER_SHUTTING_DOWN: 503,
  ERR_STORAGE_UNAVAILABLE: 503,
  /** The disk (or the S3 bucket's quota) is full, or free space is below MIN_FREE_SPACE: "507 Insufficient Storage" (RFC 4918). */
  ERR_STORAGE_FULL: 507,
  ERR_UNAUTHORIZED: 401,
  ERR_AUTH_UNAVAILABLE: 503,
  ERR_SERVICE_UNAVAILABLE: 503,
  ERR_INTERNAL_SERVER_ERROR: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error meant for the client: its code, status and message are safe to show. */
export class HttpError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    /** Overrides the catalogue's status, e.g. the 4xx a hook chose for its rejection. */
    status: number = ERROR_CODES[code],
  ) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
  }

  /** The response body: `ERR_CODE: message\n`, as tusd writes it. */
  get body(): string {
    return `${this.code}: ${this.message}\n`;
  }
}

/** The answer to anything we did not foresee: no internals, ever. */
export const internalError = () => new HttpError('ERR_INTERNAL_SERVER_ERROR', 'something went wrong on the server; the error has been logged');

/** Network errors: the service behind the server (S3, Redis) did not answer. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/** ioredis: errors Redis answered (LOADING, READONLY, OOM...) or the client raised for a broken connection. */
const REDIS_ERROR_NAMES = new Set(['ReplyError', 'ParserError', 'InterruptError', 'RedisError']);
const REDIS_STATE_MESSAGES = ['Connection in subscriber mode', "Stream isn't writeable", 'Ready check failed', 'Command timed out', 'Command aborted due to connection close'];

type ServiceFailure = { code?: unknown; name?: unknown; message?: unknown; cause?: unknown; command?: unknown; $metadata?: { httpStatusCode?: unknown } };

/**
 * Whether an error means a service the server depends on (S3, Redis, a JWKS endpoint) is
 * down or overloaded, rather than a bug: a network failure, a Redis client that gave up
 * reconnecting, or a 5xx from S3. Such a request deserves a 503 the client retries, not a
 * 500. Looks through `cause` chains (the SDKs wrap).
 */
export function isServiceUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth += 1) {
    const { code, name, message, cause, command, $metadata } = current as ServiceFailure;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    // ioredis: retries per command exhausted, or the connection is gone for good.
    if (name === 'MaxRetriesPerRequestError' || message === 'Connection is closed.') return true;
    // ioredis: any other Redis trouble (its AbortError only with the command it aborted: DOM AbortErrors are not Redis's).
    if (typeof name === 'string' && (REDIS_ERROR_NAMES.has(name) || (name === 'AbortError' && typeof command === 'object' && command !== null))) return true;
    if (typeof message === 'string' && REDIS_STATE_MESSAGES.some((start) => message.startsWith(start))) return true;
    // AWS SDK: a request that timed out, or S3 answering 5xx (SlowDown, ServiceUnavailable, InternalError).
    if (name === 'TimeoutError') return true;
    if (typeof $metadata?.httpStatusCode === 'number' && $metadata.httpStatusCode >= 500) return true;
    current = cause;
  }
  return false;
}

/** The answer while a service behind the server is unreachable: retry soon (tus clients do). */
export const serviceUnavailable = () =>
  new HttpError('ERR_SERVICE_UNAVAILABLE', 'the storage or shared state behind this server is not answering right now; retry shortly', { 'Retry-After': '5' });
