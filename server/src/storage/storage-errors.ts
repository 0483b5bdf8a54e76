import { ERRORS } from '@tus/utils';
import { HttpError } from '../errors.js';

/** Stores throw @tus/utils errors for @tus/server; our own routes want the catalogue's. */
export function toHttpError(error: unknown): never {
  if (error === ERRORS.FILE_NOT_FOUND) throw new HttpError('ERR_UPLOAD_NOT_FOUND', 'upload not found');
  if (error === ERRORS.FILE_NO_LONGER_EXISTS) {
    throw new HttpError('ERR_UPLOAD_GONE', 'the upload expired and its data was removed');
  }
  throw error;
}
