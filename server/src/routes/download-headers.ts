import { create as contentDisposition } from 'content-disposition';
import { sanitizeFilename } from '../filenames.js';
import { essence } from '../media-types.js';

export { sanitizeFilename };

/**
 * Types a browser may render inline without risk of running script in our origin.
 * Everything else (HTML, SVG, PDF, anything unknown) is sent as an opaque download.
 */
const INLINE_SAFE_TYPES = new Set([
  'text/plain',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
  'image/bmp',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mpeg',
  'audio/mp4',
  'audio/aac',
  'audio/ogg',
  'audio/webm',
  'audio/wav',
  'audio/wave',
  'audio/x-wav',
  'audio/flac',
]);

/** Content-Type and Content-Disposition for a finished upload, from its metadata. */
export function downloadHeaders(metadata: Readonly<Record<string, string | null>> | undefined): { 'Content-Type': string; 'Content-Disposition': string } {
  const declared = metadata?.filetype ? essence(metadata.filetype) : undefined;
  const inline = declared !== undefined && INLINE_SAFE_TYPES.has(declared);
  const filename = metadata?.filename ? sanitizeFilename(metadata.filename) : undefined;
  return {
    'Content-Type': inline ? declared : 'application/octet-stream',
    'Content-Disposition': contentDisposition(filename, { type: inline ? 'inline' : 'attachment' }),
  };
}
