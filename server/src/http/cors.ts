import type { Config } from '../config.js';

/** Headers a browser script may read: the tus ones, and what downloads and errors carry. */
const EXPOSED_HEADERS = [
  'Location',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Metadata',
  'Upload-Defer-Length',
  'Upload-Expires',
  'Upload-Concat',
  'Tus-Resumable',
  'Tus-Version',
  'Tus-Extension',
  'Tus-Max-Size',
  'Content-Disposition',
  'Content-Range',
  'Content-Length',
  'Accept-Ranges',
  'Retry-After',
  'Link',
].join(', ');

/**
 * CORS headers for the responses we write ourselves (errors before @tus/server runs,
 * downloads). Without them a browser reports a rejected upload as a network error and
 * the user never sees why.
 */
export function corsHeaders(cors: Config['cors'], origin: string | undefined | null): Record<string, string> {
  if (cors.origins === '*') {
    return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': EXPOSED_HEADERS };
  }
  if (origin && cors.origins.includes(origin)) {
    return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': EXPOSED_HEADERS, Vary: 'Origin' };
  }
  return { Vary: 'Origin' };
}
