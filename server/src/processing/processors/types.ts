import type { Readable } from 'node:stream';
import type { ByteRange } from '../../storage/index.js';

/** What a processor gets: plain data and a way to read the stored bytes. */
export type ProcessorInput = Readonly<{
  id: string;
  size: number;
  metadata: Readonly<Record<string, string>>;
  read(range?: ByteRange): Promise<Readable>;
  /** Results of the processors that ran before this one, by name. */
  previous: Readonly<Record<string, unknown>>;
}>;

export type ProcessorOutcome<R> = Readonly<{
  result: R;
  /** Set to reject the upload (for example a disallowed real file type): processing stops. */
  reject?: string;
}>;

/**
 * One step of post-upload processing. Steps run in order; each result is recorded before
 * the next starts, so a restart resumes after the last recorded step. Throwing retries
 * the step with backoff; it must therefore be safe to run twice.
 */
export interface Processor<R = unknown> {
  readonly name: string;
  run(input: ProcessorInput): Promise<ProcessorOutcome<R>>;
}
