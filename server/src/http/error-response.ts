import type { HttpError } from '../errors.js';

/** Writes an HttpError as tusd does: `ERR_CODE: message` in plain text, plus its headers. */
export function errorResponse(error: HttpError, headers: Record<string, string> = {}): Response {
  return new Response(error.body, {
    status: error.status,
    headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers, ...error.headers },
  });
}
