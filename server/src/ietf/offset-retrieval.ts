import { HttpError, isServiceUnavailable, serviceUnavailable } from '../errors.js';
import type { IetfDeps } from './ietf-deps.js';
import type { IetfRequest } from './ietf-request-context.js';
import { baseHeaders, ietfErrorResponse, uploadHeaders } from './ietf-responses.js';

/**
 * Offset retrieval: HEAD on the upload. A request still writing to it is asked to let go
 * first (the core's currentState), so the offset is one the next append is accepted at.
 * Works on uploads of either protocol. 204 with Upload-Offset, the completeness header,
 * Upload-Length when known, Upload-Limit where the version has it, never cached.
 */
export async function retrieveOffset(deps: IetfDeps, request: IetfRequest, id: string): Promise<Response> {
  const { exchange } = request;
  const noStore = () => {
    const headers = baseHeaders(exchange);
    headers.set('Cache-Control', 'no-store');
    return headers;
  };
  try {
    const upload = await deps.core.currentState(id, request.raw.signal, request.actor);
    const headers = uploadHeaders(exchange, upload, noStore());
    return new Response(null, { status: 204, headers });
  } catch (error) {
    if (error instanceof HttpError) return ietfErrorResponse(exchange, error, { headers: noStore() });
    if (isServiceUnavailable(error)) return ietfErrorResponse(exchange, serviceUnavailable(), { headers: noStore() });
    throw error;
  }
}
