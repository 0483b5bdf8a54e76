import type { IetfExchange } from './ietf-responses.js';
import { baseHeaders, uploadLimit } from './ietf-responses.js';

/**
 * OPTIONS with the interop header: what a client may learn before creating an upload.
 * Version 6 on: `Upload-Limit` (max-size and the lifetime of an upload); version 8:
 * "the server MUST include the Accept-Patch header field" naming application/partial-upload.
 * 200, not 204, as tusd answers discovery: some browsers refuse a 204 to a preflight.
 */
export function discover(exchange: IetfExchange): Response {
  const headers = baseHeaders(exchange);
  const limit = uploadLimit(exchange);
  if (limit) headers.set('Upload-Limit', limit);
  if (exchange.rules.acceptPatch) headers.set('Accept-Patch', 'application/partial-upload');
  return new Response(null, { status: 200, headers });
}
