import { fileTypeFromBuffer } from 'file-type';
import { essence, isAllowedType, isTextLike, type MediaTypePatterns } from '../../media-types.js';
import type { Processor } from './types.js';

export type DetectTypeResult = Readonly<{
  /** From the file's magic bytes; null when nothing was recognised. */
  detected: string | null;
  declared: string | null;
  /** Whether the detected type agrees with the declared one (null when either is missing). */
  matchesDeclared: boolean | null;
}>;

/** file-type needs at most this many leading bytes (the streaming digest keeps as many). */
export const SNIFF_BYTES = 4100;

async function leadingBytes(stream: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    total += chunk.byteLength;
    if (total >= limit) break;
  }
  return Buffer.concat(chunks).subarray(0, limit);
}

/**
 * Detects the real type from the file's first bytes and compares it with the declared
 * `filetype`. With ALLOWED_TYPES set, a real type outside the list (an executable named
 * movie.mp4) rejects the upload, and so does content that matches no type at all when
 * the declared type is one that would have been recognised.
 */
export function detectType(allowedTypes: MediaTypePatterns): Processor<DetectTypeResult> {
  return {
    name: 'type',
    quick: ({ size, streamed }) => size === 0 || (streamed?.bytes === size && streamed.head.byteLength === Math.min(size, SNIFF_BYTES)),
    async run({ size, metadata, read, streamed }) {
      const declared = metadata.filetype ? essence(metadata.filetype) : null;
      const wanted = Math.min(size, SNIFF_BYTES);
      // The bytes kept while the upload streamed in, when they are the whole head of this upload.
      const kept = streamed?.bytes === size && streamed.head.byteLength === wanted ? streamed.head : undefined;
      const head = kept ?? (size === 0 ? Buffer.alloc(0) : await leadingBytes(await read({ start: 0, end: wanted - 1 }), SNIFF_BYTES));
      const detected = (await fileTypeFromBuffer(head))?.mime ?? null;
      const result: DetectTypeResult = { detected, declared, matchesDeclared: detected && declared ? detected === declared : null };
      if (allowedTypes.length === 0) return { result };

      const allowed = allowedTypes.join(', ');
      if (detected && !isAllowedType(detected, allowedTypes)) {
        return { result, reject: `the file's content is ${detected}${declared ? ` although it was declared as ${declared}` : ''}; allowed: ${allowed}` };
      }
      if (!detected && !(declared && isAllowedType(declared, allowedTypes) && isTextLike(declared))) {
        return { result, reject: `the file's content does not look like ${declared ?? 'any allowed type'}; allowed: ${allowed}` };
      }
      return { result };
    },
  };
}
