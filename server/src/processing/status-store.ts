/** Where processing stands for one upload. 'uploading' is derived from offsets, never stored. */
export const PROCESSING_STATES = ['processing', 'done', 'failed', 'rejected'] as const;
export type ProcessingState = (typeof PROCESSING_STATES)[number];
/** What the status resource says of an upload: still uploading, or where its processing stands. */
export type StatusState = 'uploading' | ProcessingState;

export type ProcessorRecord = Readonly<{
  ok: boolean;
  result?: unknown;
  error?: string;
  at: string;
}>;

export type StatusRecord = Readonly<{
  id: string;
  state: ProcessingState;
  /** Each processor's outcome, in the order they ran. */
  processors: Readonly<Record<string, ProcessorRecord>>;
  /** Why the upload failed or was rejected. */
  error: string | null;
  /** A post-receive hook asked to stop this upload: further PATCHes are refused. */
  stopped?: boolean;
  /** The upload's owner (see uploads/ownership.ts), so the record stays theirs once the upload is gone. */
  owner?: string;
  updatedAt: string;
}>;

export type StatusListener = (record: StatusRecord) => void;

/**
 * Processing status per upload. The embedded store keeps JSON records beside the uploads;
 * a Redis store can implement the same interface for several instances.
 */
export interface StatusStore {
  get(id: string): Promise<StatusRecord | undefined>;
  /** Read-modify-write of one record; updates of one id are applied one at a time. */
  update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord>;
  delete(id: string): Promise<void>;
  /** Called after each update of `id` in this process (server-sent events). */
  subscribe(id: string, listener: StatusListener): () => void;
  /**
   * An upload was just created under a new id: it has no record, and a store that remembers
   * may answer so without a read (its processing asks before writing one).
   */
  noRecordFor?(id: string): void;
}
