import { HttpError } from '../errors.js';

/** What a discarded upload's tombstone holds (file: its contents; S3: its `reason` metadata). */
export const DISCARDED_REASON = 'processed';

/** The answer for an upload whose bytes DELETE_AFTER_PROCESSING removed: gone, and why, and what is left. */
export const bytesDeleted = (id: string) =>
  new HttpError('ERR_UPLOAD_GONE', `the upload was processed and its bytes were deleted (DELETE_AFTER_PROCESSING); its status and poster remain at /uploads/${id}`);
