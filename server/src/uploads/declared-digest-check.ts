import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { HttpError } from '../errors.js';
import { SNIFF_BYTES } from '../processing/processors/detect-type.js';
import type { StreamedDigest } from '../processing/processors/types.js';
import type { StatusStore } from '../processing/status-store.js';
import type { UploadStorage } from '../storage/index.js';
import type { UploadState } from './upload-state.js';

/** What the check of a declared digest found. */
export type DigestCheck = Readonly<{
  /** Set when the stored bytes are not what the client declared: the finishing request answers it. */
  mismatch?: HttpError;
  /** The digest of the stored bytes, when the check computed one: processing need not read them again. */
  digest?: StreamedDigest;
}>;

/**
 * The sha256 (and first bytes) of a finished upload's stored bytes, read through a hash:
 * streamed, memory flat whatever the size. Throws if the store holds another length.
 */
export async function readDigest(storage: Pick<UploadStorage, 'read'>, id: string, length: number): Promise<StreamedDigest> {
  const hash = createHash('sha256');
  const head = Buffer.alloc(Math.min(length, SNIFF_BYTES));
  let bytes = 0;
  if (length > 0) {
    await pipeline(await storage.read(id), async function* (source: AsyncIterable<Uint8Array>) {
      for await (const chunk of source) {
        if (bytes < head.length) head.set(chunk.subarray(0, head.length - bytes), bytes);
        bytes += chunk.byteLength;
        hash.update(chunk);
      }
      yield* [];
    });
  }
  if (bytes !== length) throw new Error(`read ${bytes} bytes of upload ${id}, which has ${length}`);
  return { sha256: hash.digest('hex'), bytes, head };
}

/**
 * Compares the sha256 declared at creation with the one of the stored bytes: the digest
 * computed as they streamed in when it covers exactly the upload's length, otherwise a
 * read of the stored upload. Nothing to do for an upload without a declared digest.
 */
export async function checkDeclaredDigest(storage: Pick<UploadStorage, 'read'>, upload: UploadState, streamed: StreamedDigest | undefined): Promise<DigestCheck> {
  const declared = upload.declaredSha256;
  if (declared === undefined || upload.length === undefined) return {};
  const digest = streamed?.bytes === upload.length ? streamed : await readDigest(storage, upload.id, upload.length);
  const actual = Buffer.from(digest.sha256, 'hex').toString('base64');
  if (actual === declared) return { digest };
  return { digest, mismatch: new HttpError('ERR_DIGEST_MISMATCH', `the upload's sha-256 is :${actual}: but the client declared :${declared}:`) };
}

/**
 * A mismatched upload ends here: `failed` with the reason in its status record, then settled
 * beside the upload, so processing, the reconcile and a later HEAD leave it alone. Its
 * bytes stay (HEAD shows the full offset, GET serves them) until a DELETE removes them.
 */
export async function markDigestMismatch(storage: Pick<UploadStorage, 'markSettled'>, statuses: StatusStore, id: string, mismatch: HttpError): Promise<void> {
  await statuses.update(id, (current) => ({
    id,
    processors: current?.processors ?? {},
    state: 'failed',
    error: mismatch.message,
    updatedAt: new Date().toISOString(),
  }));
  await storage.markSettled(id);
}
