import type { Readable } from 'node:stream';
import type { DataStore, Upload } from '@tus/utils';
import type { StorageKind } from '../config.js';

/** An inclusive byte range, as HTTP Range requests express it. */
export type ByteRange = Readonly<{ start: number; end: number }>;

/**
 * What the rest of the server needs from a storage kind. The tus handlers talk to
 * `datastore`; downloads, readiness and the expiry sweep use the other members.
 */
export interface UploadStorage {
  readonly kind: StorageKind;
  /** The @tus/utils DataStore that @tus/server writes through. */
  readonly datastore: DataStore;
  /** The upload's current state; throws HttpError ERR_UPLOAD_NOT_FOUND or ERR_UPLOAD_GONE. */
  getUpload(id: string): Promise<Upload>;
  /**
   * How many bytes the store holds for the upload now, asked of the store itself (a cache of
   * upload states answers getUpload from what this process wrote; processing verifies the
   * bytes are still there). Throws like getUpload.
   */
  storedBytes(id: string): Promise<number>;
  /** Streams stored bytes of an upload, the whole of it or one range; throws like getUpload. */
  read(id: string, range?: ByteRange): Promise<Readable>;
  /** Ids of every upload in storage, finished or not (tests and tools; the sweeps use the listings below). */
  listUploadIds(): Promise<string[]>;
  /**
   * Ids of uploads without a settled marker: every unfinished upload and every finished one
   * whose processing has not reached an end state. From listings only (no read per upload),
   * so the processing reconcile costs what is left to do, not what was ever stored.
   */
  listUnsettled(): Promise<string[]>;
  /**
   * Ids of uploads that may be unfinished, for the expiry sweep; from listings only. A store
   * that cannot tell exactly (file storage) answers its unsettled uploads: callers check.
   */
  listUnfinished(): Promise<string[]>;
  /**
   * Records beside the upload (STORAGE_DIR or the bucket's S3_PREFIX) that its processing
   * reached an end state, so no instance, new or restarted, processes it or announces it again.
   * Removing the upload (DELETE, expiry) removes the marker.
   */
  markSettled(id: string): Promise<void>;
  /** Whether `markSettled` was called for the upload (and it was not removed since). */
  isSettled(id: string): Promise<boolean>;
  /**
   * Processing records kept beside the uploads, for a store whose uploads do not live in
   * STORAGE_DIR (S3): a new instance with an empty STORAGE_DIR still finds them. Undefined
   * when STORAGE_DIR is where the uploads are.
   */
  readonly records?: RecordObjects;
  /**
   * Fills a final upload just created (concatenation) with the partials' bytes, in order,
   * inside the store, without reading them through this process. Answers false, having
   * written nothing, when the store cannot for these partials (S3 copies parts of at least
   * 5 MiB only): the caller then streams them. Absent where streaming is all there is.
   */
  concatenateInStore?(finalId: string, parts: readonly Readonly<{ id: string; length: number }>[]): Promise<boolean>;
  /** Removes an expired upload and remembers it, so later requests get 410 Gone rather than 404. */
  expire(id: string): Promise<void>;
  /**
   * Small files made from an upload (its poster frame), kept beside it in the same storage:
   * removed with the upload (DELETE, expiry), kept by `discardBytes`.
   */
  readonly artifacts: ArtifactStore;
  /**
   * Deletes a processed upload's bytes and record (DELETE_AFTER_PROCESSING), keeping its
   * artifacts; the processing status lives elsewhere and stays. The id then answers 410 Gone
   * saying so. Already discarded is fine.
   */
  discardBytes(id: string): Promise<void>;
  /** Throws with a reason when the storage cannot take writes. */
  checkReady(): Promise<void>;
  /** Reports each call the store makes to its service (S3: by command name) and how long it took, for metrics; absent for file storage. */
  observeRequests?(observer: (operation: string, seconds: number) => void): void;
}

/** Small JSON documents, one per upload id, stored with the uploads (see UploadStorage.records). */
export interface RecordObjects {
  /** The document's text, or undefined when there is none. */
  read(id: string): Promise<string | undefined>;
  write(id: string, text: string): Promise<void>;
  remove(id: string): Promise<void>;
}

/** An artifact's name: a plain file name (poster.jpg), never a path. */
export const ARTIFACT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** What a stored artifact is served as, from its name's extension. */
export function artifactContentType(name: string): string {
  const extension = name.slice(name.lastIndexOf('.') + 1);
  return ({ jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', json: 'application/json' } as Record<string, string>)[extension] ?? 'application/octet-stream';
}

/** Files derived from an upload, by upload id and file name (see ARTIFACT_NAME). */
export interface ArtifactStore {
  /** Stores (or replaces, whole) one artifact. */
  write(id: string, name: string, data: Buffer): Promise<void>;
  /** The artifact's bytes, or undefined when there is none. */
  read(id: string, name: string): Promise<Buffer | undefined>;
  /** Removes every artifact of the upload; none is fine. */
  remove(id: string): Promise<void>;
}
