import type { HttpError } from '../errors.js';
import { statusLink } from '../tus/upload-lifecycle.js';
import { expiresAt, isComplete, type UploadState } from '../uploads/upload-state.js';
import { INTEROP_HEADER, PROBLEM_TYPE_URI, type ProblemType, type VersionRules } from './interop-versions.js';
import { formatBoolean, formatIntegerDictionary } from './structured-fields.js';

/** What every answer to one IETF request depends on: its version's rules and our limits. */
export type IetfExchange = Readonly<{
  rules: VersionRules;
  cors: Readonly<Record<string, string>>;
  maxUploadSize: number;
  /** UPLOAD_EXPIRY in ms; 0 when unfinished uploads never expire. */
  expiryMs: number;
}>;

/** Headers on every answer: CORS, and the interop version the answer follows. */
export function baseHeaders(exchange: IetfExchange): Headers {
  const headers = new Headers(exchange.cors);
  headers.set(INTEROP_HEADER, String(exchange.rules.version));
  return headers;
}

/** `Upload-Complete: ?1` (or, in version 3, `Upload-Incomplete: ?0`). */
export function setCompleteness(headers: Headers, rules: VersionRules, complete: boolean): void {
  headers.set(rules.completeness, formatBoolean(rules.completeness === 'Upload-Incomplete' ? !complete : complete));
}

/**
 * `Upload-Limit` where the version has it: max-size is MAX_UPLOAD_SIZE, and the lifetime
 * (`expires`, `max-age` from -06) is what remains of an unfinished upload's expiry, or the
 * whole UPLOAD_EXPIRY for discovery (no upload yet).
 */
export function uploadLimit(exchange: IetfExchange, upload?: UploadState, now = Date.now()): string | undefined {
  const { limits } = exchange.rules;
  if (!limits) return undefined;
  let lifetimeMs: number | undefined;
  if (upload) {
    const at = expiresAt(upload, exchange.expiryMs);
    lifetimeMs = at ? at.getTime() - now : undefined;
  } else if (exchange.expiryMs > 0) {
    lifetimeMs = exchange.expiryMs;
  }
  return formatIntegerDictionary({
    'max-size': exchange.maxUploadSize,
    [limits.lifetimeKey]: lifetimeMs === undefined ? undefined : Math.floor(lifetimeMs / 1000),
  });
}

/** The state headers of an upload: offset, completeness, length when known, limits, status link. */
export function uploadHeaders(exchange: IetfExchange, upload: UploadState, headers = baseHeaders(exchange)): Headers {
  headers.set('Upload-Offset', String(upload.offset));
  setCompleteness(headers, exchange.rules, isComplete(upload));
  if (upload.length !== undefined) headers.set('Upload-Length', String(upload.length));
  const limit = uploadLimit(exchange, upload);
  if (limit) headers.set('Upload-Limit', limit);
  if (isComplete(upload)) headers.set('Link', statusLink(upload.id));
  return headers;
}

const PROBLEMS: Readonly<Partial<Record<HttpError['code'], { type: ProblemType; title: string }>>> = {
  ERR_MISMATCHED_OFFSET: { type: 'mismatching-upload-offset', title: 'Mismatching Upload Offset' },
  ERR_UPLOAD_COMPLETED: { type: 'completed-upload', title: 'Upload Is Completed' },
  ERR_INCONSISTENT_LENGTH: { type: 'inconsistent-upload-length', title: 'Inconsistent Upload Length Values' },
};

/**
 * An error as this version answers it: an RFC 9457 problem document for the problem types
 * the version defines, our `ERR_CODE: message` text otherwise. `headers` may carry the
 * upload's state (a 409 names the correct offset); `members` extend the problem document.
 */
export function ietfErrorResponse(
  exchange: IetfExchange,
  error: HttpError,
  { headers = baseHeaders(exchange), members = {} }: { headers?: Headers; members?: Record<string, unknown> } = {},
): Response {
  for (const [name, value] of Object.entries(error.headers)) headers.set(name, value);
  // "A server responding with a 413 … as a result of its upload limits MUST include the Upload-Limit header".
  if (error.status === 413 && !headers.has('Upload-Limit')) {
    const limit = uploadLimit(exchange);
    if (limit) headers.set('Upload-Limit', limit);
  }
  const problem = PROBLEMS[error.code];
  if (problem && exchange.rules.problemTypes.includes(problem.type)) {
    headers.set('Content-Type', 'application/problem+json');
    const body = { type: PROBLEM_TYPE_URI(problem.type), title: problem.title, detail: error.message, code: error.code, ...members };
    return new Response(JSON.stringify(body), { status: error.status, headers });
  }
  headers.set('Content-Type', 'text/plain; charset=utf-8');
  return new Response(error.body, { status: error.status, headers });
}
