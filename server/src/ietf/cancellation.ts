import { HttpError } from '../errors.js';
import { withUploadLock } from '../uploads/remove-upload.js';
import type { IetfDeps } from './ietf-deps.js';
import type { IetfRequest } from './ietf-request-context.js';
import { baseHeaders, ietfErrorResponse } from './ietf-responses.js';

/**
 * Upload cancellation: DELETE on the upload, of either protocol. The pre-terminate hook may
 * veto it; a request still writing is cut (keeping nothing: the upload goes) before the
 * store removes it; post-terminate is durable before the 204.
 */
export async function cancelUpload(deps: IetfDeps, request: IetfRequest, id: string): Promise<Response> {
  const { core, storage, locker } = deps;
  try {
    const info = await core.beforeTerminate(id, request.hook, request.actor);
    // Unknown or expired: the core says which (404 or 410).
    if (!info) await core.stateOf(id, request.actor);
    await withUploadLock(locker, id, () => storage.datastore.remove(id));
    core.terminated(id, info, request.hook);
    await core.flushed(id);
  } catch (error) {
    if (error instanceof HttpError) return ietfErrorResponse(request.exchange, error);
    throw error;
  }
  return new Response(null, { status: 204, headers: baseHeaders(request.exchange) });
}
