import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { once } from 'node:events';
import { HttpError } from '../errors.js';
import { formatBytes } from '../units/byte-size.js';
import type { ServerLifecycle } from '../http/lifecycle.js';
import { announcesChecksumTrailer, parseUploadChecksum, type DeclaredChecksum } from './upload-checksum.js';
import { UploadBody, type CutReason, type MinUploadRate } from '../http/upload-body.js';

/** Under STORAGE_DIR; a dot name, so neither store's listing takes it for an upload. */
export const STAGING_DIR = '.staging';

export type ChecksumStagingOptions = Readonly<{
  /** STORAGE_DIR (with S3 too): bodies wait in its `.staging` directory, made on first use. */
  storageDirectory: string;
  /** The same idle limit as any upload body (IDLE_TIMEOUT). */
  idleTimeoutMs: number;
  /** The same minimum rate as any upload body (MIN_UPLOAD_RATE). @default none */
  minUploadRate?: MinUploadRate;
  /** MAX_UPLOAD_SIZE: a body that would carry the upload past it stops being staged. */
  maxUploadSize: number;
  /** Staging bodies are tracked like any upload body, so shutdown and a stopping hook end them. */
  lifecycle: ServerLifecycle;
}>;

/** A request body whose checksum matched, waiting on disk for @tus/server. */
export type VerifiedBody = Readonly<{
  bytes: number;
  /** The body for @tus/server: the verified bytes, read back from the staged file. Call once. */
  open(observe?: (chunk: Buffer) => void): UploadBody;
  /** Closes the staged file (its name is already gone from the directory). Idempotent. */
  dispose(): void;
}>;

/**
 * The checksum extension, verified before a byte reaches the store.
 *
 * "Once the entire request has been received, the Server MUST verify the uploaded chunk
 * against the provided checksum using the specified algorithm. [...] In the first two cases
 * [400, 460] the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be
 * updated."
 *
 * Neither store can take bytes back (S3 parts are sent as they fill), so a body with a
 * checksum is first written to a staging file while it is hashed (memory stays flat: the
 * socket is read only as fast as the disk takes it), compared, and only then streamed to
 * @tus/server from the file. The file is unlinked as soon as it is open again, so nothing is
 * left behind whatever happens next; a crash mid-staging leaves a file that the next
 * process removes once it is older than any live request could make it.
 */
export function createChecksumStaging({ storageDirectory, idleTimeoutMs, minUploadRate, maxUploadSize, lifecycle }: ChecksumStagingOptions) {
  const directory = path.join(storageDirectory, STAGING_DIR);
  let swept: Promise<void> | undefined;

  /** A fresh name in the staging directory (made again if it vanished); the first one also clears a crash's leftovers. */
  async function stagingFile(): Promise<string> {
    await fsp.mkdir(directory, { recursive: true });
    swept ??= removeLeftovers(directory, 2 * idleTimeoutMs + 60_000);
    return path.join(directory, randomBytes(16).toString('hex'));
  }

  /**
   * Whether a request carries a checksum: an `Upload-Checksum` header, or a `Trailer`
   * header announcing one. Two header lookups, nothing allocated, for every other request.
   */
  function requested(headers: Headers): boolean {
    return headers.get('upload-checksum') !== null || (headers.get('trailer') !== null && announcesChecksumTrailer(headers));
  }

  /**
   * Stages and verifies the body of a request for which `requested()` is true; `offset` is
   * where its bytes would go. Returns the verified body, or the error to answer with
   * (400 malformed or unsupported, 413 too large, 460 mismatch, or why the body ended early).
   */
  async function verify(headers: Headers, source: Readable, offset: number, uploadId: string | undefined): Promise<VerifiedBody | HttpError> {
    const header = headers.get('upload-checksum');
    let declared: DeclaredChecksum | undefined;
    if (header !== null) {
      const parsed = parseUploadChecksum(header);
      if (parsed instanceof HttpError) return parsed;
      declared = parsed;
    } else if (!/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      // Trailers "are only allowed in chunked transfers".
      return new HttpError('ERR_INVALID_CHECKSUM', 'an Upload-Checksum trailer needs a body sent with Transfer-Encoding: chunked');
    }

    const file = await stagingFile();
    const received = new UploadBody(source, idleTimeoutMs, undefined, minUploadRate);
    const untrack = lifecycle.track(received, uploadId);
    // Checksum in a header: hashed as it arrives. In a trailer: the algorithm is known only
    // at the end, so the staged file is read once more then (it is still in the page cache).
    const hash = declared && createHash(declared.algorithm);
    const room = maxUploadSize - offset;
    let kept: fs.ReadStream | undefined;
    try {
      const bytes = await stage(received.stream, file, room, hash && ((chunk) => hash.update(chunk)));
      if (bytes > room) {
        return new HttpError('ERR_MAX_SIZE_EXCEEDED', `the upload with this request body is over the maximum upload size of ${formatBytes(maxUploadSize)} (${maxUploadSize} bytes)`, { Connection: 'close' });
      }
      if (received.cutReason) return endedEarly(received.cutReason);
      if (!declared) {
        const trailer = (source as Partial<IncomingMessage>).trailers?.['upload-checksum'];
        if (trailer === undefined) return new HttpError('ERR_INVALID_CHECKSUM', 'the request announced an Upload-Checksum trailer and sent none');
        const parsed = parseUploadChecksum(trailer, 'the Upload-Checksum trailer');
        if (parsed instanceof HttpError) return parsed;
        declared = parsed;
      }
      const actual = hash ? hash.digest() : await hashFile(file, declared.algorithm);
      if (!actual.equals(declared.digest)) {
        return new HttpError(
          'ERR_CHECKSUM_MISMATCH',
          `the body's ${declared.algorithm} checksum is ${actual.toString('base64')}, Upload-Checksum says ${declared.digest.toString('base64')}; none of its ${bytes} bytes were stored, resend them`,
        );
      }
      kept = fs.createReadStream(file);
      await once(kept, 'open');
      const reader = kept;
      let opened = false;
      return {
        bytes,
        open(observe) {
          if (opened) throw new Error('a verified body is opened once');
          opened = true;
          return new UploadBody(reader, idleTimeoutMs, observe);
        },
        dispose: () => void reader.destroy(),
      };
    } catch (error) {
      kept?.destroy();
      throw error;
    } finally {
      untrack();
      if (!received.isFinished) received.cut('client-aborted');
      // Open or not, the name goes: an open file stays readable until it is closed.
      await fsp.rm(file, { force: true });
    }
  }

  return { requested, verify };
}

/**
 * Writes the body to `file` and returns how many bytes arrived, stopping as soon as that is
 * more than `room`. Waits for the disk before reading on, so at most a few chunks are in memory.
 */
async function stage(body: ReadableStream<Uint8Array>, file: string, room: number, observe: ((chunk: Uint8Array) => void) | undefined): Promise<number> {
  const out = fs.createWriteStream(file, { flags: 'wx' });
  let failure: Error | undefined;
  out.on('error', (error) => {
    failure ??= error;
  });
  const reader = body.getReader();
  let bytes = 0;
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      bytes += chunk.byteLength;
      if (bytes > room) break;
      observe?.(chunk);
      if (failure) throw failure;
      if (!out.write(chunk)) await once(out, 'drain');
    }
    if (failure) throw failure;
    out.end();
    await finished(out);
    return bytes;
  } finally {
    // A body left unread (too large, a disk error) is cancelled: the socket is no longer read.
    void reader.cancel().catch(() => undefined);
    out.destroy();
  }
}

async function hashFile(file: string, algorithm: string): Promise<Buffer> {
  const hash = createHash(algorithm);
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest();
}

/** A body that did not arrive whole cannot be verified: none of it is stored. */
function endedEarly(reason: CutReason): HttpError {
  const close = { Connection: 'close' };
  switch (reason) {
    case 'shutdown':
      return new HttpError('ERR_SERVER_SHUTTING_DOWN', 'the server is shutting down; retry in a few seconds', { ...close, 'Retry-After': '5' });
    case 'stopped':
      return new HttpError('ERR_UPLOAD_STOPPED', 'this upload was stopped by the server and takes no more bytes', close);
    case 'idle':
    case 'too-slow':
    case 'client-aborted':
      return new HttpError('ERR_UPLOAD_INTERRUPTED', 'the request body ended before it was complete; its checksum could not be verified, so none of it was stored', close);
    default: {
      const unknown: never = reason;
      throw new Error(`unknown cut reason ${String(unknown)}`);
    }
  }
}

/** Staged files older than any live request could leave them: a crash's leftovers. Best effort. */
async function removeLeftovers(directory: string, olderThanMs: number): Promise<void> {
  const names = await fsp.readdir(directory).catch(() => []);
  const before = Date.now() - olderThanMs;
  for (const name of names) {
    const file = path.join(directory, name);
    const stat = await fsp.stat(file).catch(() => undefined);
    if (stat?.isFile() && stat.mtimeMs < before) await fsp.rm(file, { force: true }).catch(() => undefined);
  }
}
