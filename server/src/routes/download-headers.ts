import { create as contentDisposition } from 'content-disposition';

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

/**
 * Makes a client-supplied filename safe for a header and for the user's disk: no control
 * characters, no path separators, no leading dots, at most 255 characters.
 */
export function sanitizeFilename(name: string): string | undefined {
  const cleaned = name
    .normalize('NFC')
    // eslint-disable-next-line no-control-regex -- control characters are exactly what we strip
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '')
    // Bidirectional overrides make "invoice\u202Efdp.exe" display as "invoiceexe.pdf".
    .replace(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/[/\\]/g, '_')
    .replace(/^[\s.]+/, '')
    .trim();
  const limited = Array.from(cleaned).slice(0, 255).join('');
  return limited === '' ? undefined : limited;
}

/** Content-Type and Content-Disposition for a finished upload, from its metadata. */
export function downloadHeaders(metadata: Record<string, string | null> | undefined): { 'Content-Type': string; 'Content-Disposition': string } {
  const declared = metadata?.filetype?.split(';')[0]?.trim().toLowerCase();
  const inline = declared !== undefined && INLINE_SAFE_TYPES.has(declared);
  const filename = metadata?.filename ? sanitizeFilename(metadata.filename) : undefined;
  return {
    'Content-Type': inline ? declared : 'application/octet-stream',
    'Content-Disposition': contentDisposition(filename, { type: inline ? 'inline' : 'attachment' }),
  };
}
