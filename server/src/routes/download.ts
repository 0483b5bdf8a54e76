import { Readable } from 'node:stream';
import rangeParser from 'range-parser';
import { HttpError } from '../errors.js';
import type { ByteRange, UploadStorage } from '../storage/index.js';
import { isFinished, type UploadState } from '../uploads/upload-state.js';
import { downloadHeaders } from './download-headers.js';

/** Picks the byte range to send: the single range asked for, or the whole file. */
function chooseRange(rangeHeader: string | null, ifRange: string | null, etag: string, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!rangeHeader || size === 0) return undefined;
  // "If-Range: if the representation is unchanged, send me the part(s) that I am requesting"
  if (ifRange !== null && ifRange !== etag) return undefined;
  // "If the selected representation is shorter than the specified suffix-length, the entire
  // representation is used" (RFC 9110); range-parser calls such a suffix unsatisfiable.
  const header = rangeHeader.replace(/([=,]\s*)-(\d+)(?=\s*(,|$))/g, (spec, lead: string, n: string) => (Number(n) > size ? `${lead}0-` : spec));
  const ranges = rangeParser(size, header, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  // Malformed or multipart requests: a server MAY ignore Range and send the whole file.
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  const [range] = ranges;
  return range;
}

/**
 * GET on an upload URL: the finished file, with Range support. Unfinished uploads are
 * not served, so nobody mistakes a partial video for the real one. The upload's state
 * comes from the core (which answers 404/410 for unknown and expired ones).
 */
export async function serveDownload(storage: UploadStorage, upload: UploadState, request: Request, cors: Readonly<Record<string, string>>): Promise<Response> {
  const { id, length: size } = upload;
  if (size === undefined || !isFinished(upload)) {
    const total = size === undefined ? 'an unknown total' : `${size}`;
    throw new HttpError('ERR_UPLOAD_NOT_FINISHED', `the upload is not finished (${upload.offset} of ${total} bytes received)`);
  }
  const etag = `"${id}-${size}"`;
  const range = chooseRange(request.headers.get('range'), request.headers.get('if-range'), etag, size);
  const headers: Record<string, string> = {
    ...cors,
    ...downloadHeaders(upload.metadata),
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Cache-Control': 'private, no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; sandbox",
  };
  if (range === 'unsatisfiable') {
    throw new HttpError('ERR_RANGE_NOT_SATISFIABLE', `the range is outside the file's ${size} bytes`, { 'Content-Range': `bytes */${size}` });
  }
  const stream = await storage.read(id, range);
  const body = Readable.toWeb(stream) as ReadableStream<Uint8Array>;
  if (!range) {
    return new Response(body, { status: 200, headers: { ...headers, 'Content-Length': String(size) } });
  }
  return new Response(body, {
    status: 206,
    headers: { ...headers, 'Content-Length': String(range.end - range.start + 1), 'Content-Range': `bytes ${range.start}-${range.end}/${size}` },
  });
}
