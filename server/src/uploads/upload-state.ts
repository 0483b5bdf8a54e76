import type { Upload } from '@tus/utils';
import type { HookUpload } from '../hooks/types.js';
import { plainMetadata } from '../upload-metadata.js';
import { splitStoredMetadata, type SplitMetadata } from './stored-metadata.js';

/**
 * An upload as every protocol sees it: what the core decides on, whichever front-end
 * (tus 1.0, the IETF draft) created it and whichever store keeps it. Its metadata and the
 * core's facts (binary keys, concatenation kind, declared digest, owner, protocol) are those
 * the store keeps in its record (stored-metadata.ts).
 */
export type UploadState = Readonly<{
  id: string;
  /** Total length in bytes; undefined while deferred ("Upload-Defer-Length: 1"). */
  length: number | undefined;
  /** Bytes stored so far. */
  offset: number;
  /** When the upload was created (ISO 8601), when the store knows it. */
  createdAt: string | null;
}> &
  SplitMetadata;

/** The core's view of a store's @tus/utils Upload. */
export function uploadStateOf(upload: Pick<Upload, 'id' | 'size' | 'offset' | 'metadata' | 'creation_date'>): UploadState {
  return {
    id: upload.id,
    length: upload.size,
    offset: upload.offset,
    ...splitStoredMetadata(upload.metadata),
    createdAt: upload.creation_date ?? null,
  };
}

/**
 * "finished": every byte of a known length is stored. tus 1.0: the upload is complete when
 * "the Upload-Offset header's value [is] equal to the Upload-Length"; a deferred length is
 * never finished.
 */
export function isFinished(upload: Pick<UploadState, 'length' | 'offset'>): boolean {
  return upload.length !== undefined && upload.offset === upload.length;
}

/**
 * Whether the upload is one a client keeps: finished, and not a partial upload of a
 * concatenation (tus: "partial uploads … are not meant to be processed on their own"; their
 * final upload is). Processing, post-finish and the rule that kept uploads never expire
 * apply to these only.
 */
export function isComplete(upload: Pick<UploadState, 'length' | 'offset' | 'concat'>): boolean {
  return isFinished(upload) && upload.concat.kind !== 'partial';
}

/**
 * The upload as @tus/server is given it: a complete upload without its creation date. The
 * spec's Upload-Expires is about *unfinished* uploads, but @tus/server compares every
 * upload's creation date with the expiry and would answer 410 for a finished video a day
 * later. The stores' own readers (hooks, processing, downloads) keep the date. Mutates and
 * returns `upload`: callers pass a copy they own.
 */
export function hideCompleteCreationDate<T extends Upload>(upload: T): T {
  if (isComplete(uploadStateOf(upload))) upload.creation_date = undefined;
  return upload;
}

/**
 * When an upload expires (tus expiration extension: "the Server MAY remove unfinished
 * uploads once they expire"); undefined when it never does: complete uploads, expiry
 * switched off (0), or a creation date the store does not know. A partial upload of a
 * concatenation expires even when all its bytes arrived: it is only ever a piece.
 */
export function expiresAt(upload: Pick<UploadState, 'length' | 'offset' | 'createdAt' | 'concat'>, expiryMs: number): Date | undefined {
  if (expiryMs <= 0 || isComplete(upload) || !upload.createdAt) return undefined;
  const created = Date.parse(upload.createdAt);
  return Number.isNaN(created) ? undefined : new Date(created + expiryMs);
}

/** "expired": unfinished and past its expiry at `now`. */
export function isExpired(upload: Pick<UploadState, 'length' | 'offset' | 'createdAt' | 'concat'>, expiryMs: number, now = Date.now()): boolean {
  const at = expiresAt(upload, expiryMs);
  return at !== undefined && now > at.getTime();
}

/**
 * When a complete upload's retention ends (FINISHED_UPLOAD_RETENTION, counted from its
 * creation, the one date every store keeps); undefined while it is kept: retention off (0),
 * an upload not complete (expiry is its rule), or a creation date the store does not know.
 */
export function retainedUntil(upload: Pick<UploadState, 'length' | 'offset' | 'createdAt' | 'concat'>, retentionMs: number): Date | undefined {
  if (retentionMs <= 0 || !isComplete(upload) || !upload.createdAt) return undefined;
  const created = Date.parse(upload.createdAt);
  return Number.isNaN(created) ? undefined : new Date(created + retentionMs);
}

/** Complete and past its retention at `now`: the expiry sweep removes it, as it removes expired uploads. */
export function isPastRetention(upload: Pick<UploadState, 'length' | 'offset' | 'createdAt' | 'concat'>, retentionMs: number, now = Date.now()): boolean {
  const until = retainedUntil(upload, retentionMs);
  return until !== undefined && now > until.getTime();
}

/** The upload as hooks and processing payloads carry it: plain JSON. */
export function hookUploadOf(upload: UploadState): HookUpload {
  const info: HookUpload = { id: upload.id, size: upload.length ?? null, offset: upload.offset, metadata: plainMetadata(upload.metadata), createdAt: upload.createdAt };
  return upload.binaryKeys.length > 0 ? { ...info, binaryMetadataKeys: upload.binaryKeys } : info;
}
