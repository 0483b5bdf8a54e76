/**
 * Media type patterns such as `video/*` or `image/png`, as ALLOWED_TYPES lists them.
 * An empty list allows every type.
 */
export type MediaTypePatterns = readonly string[];

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/;

export function isMediaTypePattern(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/** The essence of a type: "Video/MP4; codecs=avc1" → "video/mp4". */
export function essence(type: string): string {
  return (type.split(';')[0] ?? '').trim().toLowerCase();
}

export function isAllowedType(type: string, patterns: MediaTypePatterns): boolean {
  if (patterns.length === 0) return true;
  const [major] = essence(type).split('/');
  return patterns.some((pattern) => pattern === essence(type) || (pattern.endsWith('/*') && pattern.slice(0, -2) === major));
}

/**
 * Types whose content has no magic bytes to recognise: for them "no type detected" is
 * what honest content looks like. For every other type it means the bytes are not what
 * the client claimed.
 */
export function isTextLike(type: string): boolean {
  const t = essence(type);
  return t.startsWith('text/') || t === 'application/json' || t === 'application/xml' || t.endsWith('+json') || t.endsWith('+xml');
}
