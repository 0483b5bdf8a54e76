import type { Readable } from 'node:stream';
import type { ByteRange } from '../../storage/index.js';

/**
 * What the upload core computed while an upload's bytes streamed in, in one uninterrupted
 * sequence from offset 0 (server/src/uploads/streaming-digest.ts): enough for sha256 and
 * type detection without reading the file again.
 */
export type StreamedDigest = Readonly<{
  /** sha256 of the first `bytes` bytes, hex. */
  sha256: string;
  bytes: number;
  /** The first bytes (at most what type detection needs). */
  head: Buffer;
}>;

/** What a processor gets: plain data and a way to read the stored bytes. */
export type ProcessorInput = Readonly<{
  id: string;
  size: number;
  metadata: Readonly<Record<string, string>>;
  read(range?: ByteRange): Promise<Readable>;
  /** Set when the bytes were digested as they arrived; a processor trusts it only when `bytes` equals `size`. */
  streamed?: StreamedDigest;
  /** Results of the processors that ran before this one, by name. */
  previous: Readonly<Record<string, unknown>>;
}>;

export type ProcessorOutcome<R> = Readonly<{
  result: R;
  /** Set to reject the upload (for example a disallowed real file type): processing stops. */
  reject?: string;
}>;

/** What `wants` sees: the upload and the earlier results, no bytes. */
export type ProcessorUpload = Pick<ProcessorInput, 'id' | 'size' | 'metadata' | 'previous'>;

/**
 * One step of post-upload processing. Steps run in order; each result is recorded before
 * the next step that is not quick starts, so a restart resumes after the last recorded step. Throwing retries
 * the step with backoff; it must therefore be safe to run twice. Results are plain data
 * (JSON): they go into the status resource and the post-process hook.
 */
export interface Processor<R = unknown> {
  readonly name: string;
  /**
   * Whether this upload is one for this step (say, videos only). When it answers false the
   * step is recorded as `{ skipped: 'not wanted' }` without running. Absent: every upload.
   */
  wants?(upload: ProcessorUpload): boolean;
  /**
   * Whether the step will answer at once for this upload, reading no stored bytes and
   * waiting on nothing (a digest streamed in, a skip). Such a result is recorded with the
   * next write rather than one of its own; every other step has the results before it
   * recorded first, so the status shows them while it runs and a restart keeps them.
   * Absent: never quick.
   */
  quick?(input: Pick<ProcessorInput, 'size' | 'metadata' | 'previous' | 'streamed'>): boolean;
  run(input: ProcessorInput): Promise<ProcessorOutcome<R>>;
}
