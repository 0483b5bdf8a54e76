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
  /** Streams stored bytes of an upload, the whole of it or one range; throws like getUpload. */
  read(id: string, range?: ByteRange): Promise<Readable>;
  /** Ids of every upload in storage, finished or not. */
  listUploadIds(): Promise<string[]>;
  /** Removes an expired upload and remembers it, so later requests get 410 Gone rather than 404. */
  expire(id: string): Promise<void>;
  /** Throws with a reason when the storage cannot take writes. */
  checkReady(): Promise<void>;
}
