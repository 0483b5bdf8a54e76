import { HttpError } from '../errors.js';
import type { UploadProtocol } from './stored-metadata.js';
import type { UploadState } from './upload-state.js';

export type { UploadProtocol } from './stored-metadata.js';

const NAMES: Readonly<Record<UploadProtocol, string>> = {
  tus: 'tus 1.0 (Tus-Resumable)',
  ietf: 'the IETF resumable upload protocol (Upload-Draft-Interop-Version)',
};

/** The protocol that created an upload: tus 1.0 unless its record says otherwise. */
export const protocolOf = (upload: Pick<UploadState, 'protocol'>): UploadProtocol => upload.protocol ?? 'tus';

/**
 * "Continued by the same protocol only": the two protocols disagree on what completes an
 * upload (tus: the offset reaching Upload-Length; IETF: a request saying Upload-Complete),
 * on media types and on answers, so bytes are appended only by the protocol that created the
 * upload. Reading (HEAD, GET, the status resource) and cancelling (DELETE) work with either.
 */
export function checkSameProtocol(upload: Pick<UploadState, 'protocol'>, protocol: UploadProtocol): void {
  const created = protocolOf(upload);
  if (created === protocol) return;
  throw new HttpError('ERR_WRONG_PROTOCOL', `this upload was created with ${NAMES[created]}: continue it with that protocol, not ${NAMES[protocol]}`);
}
