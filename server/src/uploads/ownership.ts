import type { Actor } from './actor.js';
import type { UploadState } from './upload-state.js';

/**
 * Whether `actor` may see or change the upload: "an upload belongs to whoever created it".
 * Everyone may when authentication is off (no actor) or the upload has no owner (created
 * while it was off); otherwise its owner and admins only. Anyone else is told it does not
 * exist (404), exactly as for an unknown id, so ids cannot be probed.
 */
export function mayAccess(upload: Pick<UploadState, 'owner'>, actor: Actor | undefined): boolean {
  return actor === undefined || actor.admin || upload.owner === undefined || upload.owner === actor.subject;
}
