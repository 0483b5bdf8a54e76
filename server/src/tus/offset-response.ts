import { formatMetadataHeader } from '../uploads/stored-metadata.js';
import { isComplete, type UploadState } from '../uploads/upload-state.js';
import { TUS_VERSION } from './protocol-guard.js';
import { statusLink } from './upload-lifecycle.js';

/** The tus 1.0 answer to a HEAD request for an upload: its offset, length and metadata. */
export function offsetResponse(state: UploadState, cors: Readonly<Record<string, string>>, tusPath: string): Response {
  const headers = new Headers(cors);
  headers.set('Tus-Resumable', TUS_VERSION);
  // "The Server MUST prevent the client and/or proxies from caching the response by adding
  // the Cache-Control: no-store header to the response."
  headers.set('Cache-Control', 'no-store');
  // "The Server MUST always include the Upload-Offset header in the response for a HEAD
  // request, even if the offset is 0, or the upload is already considered completed."
  headers.set('Upload-Offset', String(state.offset));
  // "If the size of the upload is known, the Server MUST include the Upload-Length header in
  // the response." / "As long as the length of the upload is not known, the Server MUST set
  // Upload-Defer-Length: 1 in all responses to HEAD requests."
  if (state.length === undefined) headers.set('Upload-Defer-Length', '1');
  else headers.set('Upload-Length', String(state.length));
  // "If an upload contains additional metadata, responses to HEAD requests MUST include the
  // Upload-Metadata header"; it "MUST consist of one or more comma-separated key-value
  // pairs", so an upload without metadata gets none (as tusd does). Each value is the
  // base64 of the bytes the client sent, binary ones included.
  if (Object.keys(state.metadata).length > 0) headers.set('Upload-Metadata', formatMetadataHeader(state));
  // Concatenation: "The Server MUST respond with the Upload-Concat header" to HEAD on partial
  // and final uploads. (A final upload is built before its URL is handed out, so its offset
  // is always its length.)
  if (state.concat.kind === 'partial') headers.set('Upload-Concat', 'partial');
  if (state.concat.kind === 'final') headers.set('Upload-Concat', `final;${state.concat.parts.map((id) => `${tusPath}/${id}`).join(' ')}`);
  if (isComplete(state)) headers.set('Link', statusLink(state.id));
  return new Response(null, { status: 200, headers });
}
