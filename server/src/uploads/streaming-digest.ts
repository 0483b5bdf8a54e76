import { createHash, type Hash } from 'node:crypto';
import { SNIFF_BYTES } from '../processing/processors/detect-type.js';
import type { StreamedDigest } from '../processing/processors/types.js';

export type StreamingDigestOptions = Readonly<{
  /**
   * Uploads whose running digest is kept between requests; the least recently used goes first.
   * @default 1000
   */
  maxEntries?: number;
  /**
   * A running digest not continued within this time is dropped (the upload falls back to a read).
   * @default 300000 (5 minutes)
   */
  idleMs?: number;
  /**
   * Leading bytes kept for type detection.
   * @default 4100 (what detect-type reads)
   */
  headBytes?: number;
  /**
   * Uploads longer than this are hashed by reading the file after the finish, as before: for
   * them the transfer dominates, and hashing in the request path would slow it down.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
  now?: () => number;
}>;

/** An upload's bytes hashed so far, from offset 0: small (a hash state and at most `headBytes`). */
type Running = { hash: Hash; bytes: number; head: Buffer | undefined; headLength: number; touched: number; tooLong?: boolean };

/** One request's view: it sees the body's chunks in the order the store receives them. */
export interface DigestTap {
  observe(chunk: Uint8Array): void;
  /**
   * The request is over and the upload's offset is `storedOffset` (undefined when unknown:
   * an error, a cut body). The running digest is kept for the next request only if it
   * covers exactly the stored bytes.
   */
  settle(id: string, storedOffset: number | undefined): void;
  /**
   * The last byte is stored (`storedOffset` is the length): the digest, if the bytes hashed
   * are exactly the bytes stored; undefined otherwise (processing then reads the file).
   */
  finish(id: string, storedOffset: number): StreamedDigest | undefined;
}

/**
 * sha256 and the first bytes of an upload computed while its bytes stream in, so processing
 * does not read the file again. Only an uninterrupted sequence from offset 0 qualifies: a
 * body that starts at 0 (creation-with-upload, a first PATCH), or a PATCH that starts
 * exactly where the previous one on this instance ended and was kept whole. Anything else
 * (a gap, another instance, a restart, a cut body, a store that kept fewer bytes than it
 * was sent) has no tap or drops its state, and processing reads the file: a wrong hash is
 * never possible, only a missed shortcut.
 */
export function createStreamingDigests({ maxEntries = 1000, idleMs = 5 * 60_000, headBytes = SNIFF_BYTES, maxBytes = 64 * 1024 * 1024, now = Date.now }: StreamingDigestOptions = {}) {
  /** Running digests between requests, oldest first (re-inserted when continued). */
  const waiting = new Map<string, Running>();

  function evict(): void {
    const oldest = now() - idleMs;
    for (const [id, running] of waiting) {
      if (waiting.size <= maxEntries && running.touched >= oldest) break;
      waiting.delete(id);
    }
  }

  /**
   * A tap for a request whose body starts at `offset` of upload `id` (undefined for a
   * creation, which always starts at 0). Undefined when the bytes before `offset` were not
   * hashed here. The running state is taken out of the map: a second request racing for
   * the same offset gets none (at most one of them can be stored anyway). An upload known to
   * be longer than `maxBytes` (`expectedLength`: its length, or what this request carries)
   * gets none either: hashing its first `maxBytes` would be for nothing.
   */
  function tap(id: string | undefined, offset: number, expectedLength?: number): DigestTap | undefined {
    evict();
    let running: Running | undefined;
    if (offset === 0) {
      if (id !== undefined) waiting.delete(id);
      if (expectedLength !== undefined && expectedLength > maxBytes) return undefined;
      running = { hash: createHash('sha256'), bytes: 0, head: undefined, headLength: 0, touched: now() };
    } else if (id !== undefined) {
      const found = waiting.get(id);
      waiting.delete(id);
      // Out of sequence (a gap, a retry from elsewhere): whatever this request does, the
      // upload no longer arrives as one sequence here.
      if (found?.bytes !== offset) return undefined;
      running = found;
    }
    if (!running) return undefined;
    return requestTap(running);
  }

  function requestTap(running: Running): DigestTap {
    let closed = false;
    return {
      observe(chunk) {
        if (closed || running.tooLong) return;
        if (running.bytes + chunk.byteLength > maxBytes) {
          running.tooLong = true;
          return;
        }
        running.hash.update(chunk);
        if (running.headLength < headBytes) {
          running.head ??= Buffer.allocUnsafe(headBytes);
          const take = Math.min(headBytes - running.headLength, chunk.byteLength);
          running.head.set(chunk.subarray(0, take), running.headLength);
          running.headLength += take;
        }
        running.bytes += chunk.byteLength;
      },
      settle(id, storedOffset) {
        if (closed) return;
        closed = true;
        if (running.tooLong || storedOffset !== running.bytes) {
          // Our view and the store's disagree: whatever was kept for this upload is suspect too.
          waiting.delete(id);
          return;
        }
        running.touched = now();
        waiting.delete(id);
        waiting.set(id, running);
        evict();
      },
      finish(id, storedOffset) {
        if (closed) return undefined;
        closed = true;
        waiting.delete(id);
        if (running.tooLong || storedOffset !== running.bytes) return undefined;
        const head = Buffer.from((running.head ?? Buffer.alloc(0)).subarray(0, running.headLength));
        return { sha256: running.hash.digest('hex'), bytes: running.bytes, head };
      },
    };
  }

  return {
    tap,
    /** The upload is gone (DELETE, expiry): its running digest too. */
    forget: (id: string) => void waiting.delete(id),
    /** Running digests kept between requests (tests). */
    get size() {
      return waiting.size;
    },
  };
}

export type StreamingDigests = ReturnType<typeof createStreamingDigests>;
