/**
 * Upload ids are what @tus/server's default naming function makes (32 hex characters);
 * we accept a slightly wider, filesystem- and URL-safe alphabet and nothing else. Every
 * id from a URL is checked here before it reaches a store, so "../etc/passwd", NUL bytes
 * or a 10 KB name answer 404 instead of touching the disk.
 */
const UPLOAD_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function isValidUploadId(id: string): boolean {
  return UPLOAD_ID.test(id);
}

/** Decodes one URL path segment into an upload id, or undefined if it cannot be one. */
export function uploadIdFromSegment(segment: string): string | undefined {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  return isValidUploadId(id) ? id : undefined;
}
