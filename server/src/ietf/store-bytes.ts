import { Readable } from 'node:stream';
import type { UploadStorage } from '../storage/index.js';
import type { UploadBody } from '../http/upload-body.js';

export type StoredBytes = Readonly<{
  /** The upload's offset after the write: where its stored bytes end. */
  offset: number;
  /** The client sent more than `room` bytes: the rest was not read, and nothing past `room` was stored. */
  overflowed: boolean;
}>;

/**
 * Appends a request body to an upload at `offset`, never more than `room` bytes: past the
 * declared length or MAX_UPLOAD_SIZE the body stops being read and the write ends with what
 * fits, so the store never holds a byte too many (the caller answers the 4xx). A body cut
 * short (client gone, idle, shutdown, a newer request for the upload) ends the write
 * gracefully: the store keeps every byte that arrived. `observe` sees exactly the bytes
 * handed to the store (the streaming digest).
 */
export async function storeBytes(
  storage: UploadStorage,
  id: string,
  offset: number,
  body: UploadBody,
  room: number,
  observe?: (chunk: Uint8Array) => void,
): Promise<StoredBytes> {
  let overflowed = false;
  const reader = body.stream.getReader();
  async function* bounded(): AsyncGenerator<Uint8Array> {
    let passed = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const left = room - passed;
        const chunk = value.byteLength > left ? value.subarray(0, left) : value;
        if (chunk.byteLength > 0) {
          passed += chunk.byteLength;
          observe?.(chunk);
          yield chunk;
        }
        if (chunk !== value) {
          overflowed = true;
          return;
        }
      }
    } finally {
      // Stops reading the socket (an overflow, or the store gave up); a no-op once the body ended.
      await reader.cancel().catch(() => undefined);
    }
  }
  const stored = await storage.datastore.write(Readable.from(bounded(), { objectMode: false }), id, offset);
  return { offset: stored, overflowed };
}
