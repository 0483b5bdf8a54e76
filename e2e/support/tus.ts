import http from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { DefaultHttpStack, Upload, type HttpStack, type UploadOptions } from 'tus-js-client';
import type { RawResponse } from '../../server/src/testing/http-test-helpers.js';
import { sha256Stream } from './files.js';
import { pollUntil, sleep, withTimeout } from './server-process.js';

export const TUS = { 'Tus-Resumable': '1.0.0' } as const;
export const OCTET = 'application/offset+octet-stream';

/** Base64 tus metadata: `key value,key value`. */
export function encodeMetadata(metadata: Readonly<Record<string, string>>): string {
  return Object.entries(metadata)
    .map(([key, value]) => `${key} ${Buffer.from(value, 'utf8').toString('base64')}`)
    .join(',');
}

/** fetch with a bound: a hung server fails the test instead of stalling it. */
export function fetchWithin(url: string, init: RequestInit = {}, timeoutMs = 30_000): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
}

/** POST to the creation endpoint; returns the absolute upload URL. */
export async function createUpload(
  endpoint: string,
  options: { length?: number; defer?: boolean; metadata?: Record<string, string> } = {},
): Promise<string> {
  const headers: Record<string, string> = { ...TUS };
  if (options.defer) headers['Upload-Defer-Length'] = '1';
  else headers['Upload-Length'] = String(options.length ?? 0);
  if (options.metadata) headers['Upload-Metadata'] = encodeMetadata(options.metadata);
  const response = await fetchWithin(endpoint, { method: 'POST', headers });
  const body = await response.text();
  if (response.status !== 201) throw new Error(`creating an upload answered ${response.status}: ${body}`);
  const location = response.headers.get('location');
  if (!location) throw new Error('creating an upload answered without Location');
  return new URL(location, endpoint).toString();
}

export type HeadResult = Readonly<{ status: number; offset: number | undefined; length: number | undefined; headers: Headers }>;

export async function head(uploadUrl: string, timeoutMs = 30_000): Promise<HeadResult> {
  const response = await fetchWithin(uploadUrl, { method: 'HEAD', headers: TUS }, timeoutMs);
  await response.arrayBuffer();
  const number = (name: string) => {
    const value = response.headers.get(name);
    return value === null ? undefined : Number(value);
  };
  return { status: response.status, offset: number('upload-offset'), length: number('upload-length'), headers: response.headers };
}

/** A whole-body PATCH through fetch: status, headers and the body text. */
export async function patch(uploadUrl: string, offset: number, body: Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}): Promise<{ status: number; offset: number | undefined; text: string }> {
  const response = await fetchWithin(uploadUrl, {
    method: 'PATCH',
    headers: { ...TUS, 'Content-Type': OCTET, 'Upload-Offset': String(offset), ...headers },
    body,
  });
  const text = await response.text();
  const newOffset = response.headers.get('upload-offset');
  return { status: response.status, offset: newOffset === null ? undefined : Number(newOffset), text };
}

/** GET the upload URL and hash what comes back. */
export async function download(uploadUrl: string, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ status: number; headers: Headers; sha256: string; bytes: number }> {
  const response = await fetchWithin(uploadUrl, { headers }, timeoutMs);
  if (!response.body) return { status: response.status, headers: response.headers, sha256: '', bytes: 0 };
  const { sha256, bytes } = await sha256Stream(response.body);
  return { status: response.status, headers: response.headers, sha256, bytes };
}

/** Waits until the data file of an upload on disk holds at least `bytes` (polling; bounded). HEAD would take the upload's lock. */
export async function waitForStoredBytes(readSize: () => Promise<number>, bytes: number, timeoutMs = 15_000): Promise<number> {
  return pollUntil(async () => {
    const size = await readSize();
    return size >= bytes ? size : undefined;
  }, `at least ${bytes} bytes stored`, timeoutMs, 20);
}

export type { RawResponse };

/** Node's response headers as RawResponse holds them: one string each, repeated values joined with ', '. */
function flatHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

/**
 * A request over its own TCP connection (no agent) whose body the test writes piece by
 * piece, can stall, or can cut. The response is collected as text (error bodies are small).
 */
export class RawRequest {
  readonly request: http.ClientRequest;
  /** Settles with the response, or rejects if the connection failed before one arrived. */
  readonly response: Promise<RawResponse>;
  private responded = false;
  bytesWritten = 0;

  constructor(url: string, method: string, headers: Record<string, string | number>) {
    this.request = http.request(url, { method, headers, agent: false });
    this.response = new Promise<RawResponse>((resolve, reject) => {
      this.request.on('response', (res) => {
        this.responded = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, headers: flatHeaders(res.headers), body: Buffer.concat(chunks).toString('utf8') }));
      });
      this.request.on('error', (error) => {
        if (!this.responded) reject(error);
      });
    });
    // Callers await `response` when they care; never let a rejection go unhandled meanwhile.
    this.response.catch(() => undefined);
    this.request.flushHeaders();
  }

  get hasResponse(): boolean {
    return this.responded;
  }

  /** Writes one piece and waits until it is handed to the kernel. False once the server has answered or the socket is gone. */
  async write(piece: Uint8Array, timeoutMs = 30_000): Promise<boolean> {
    if (this.responded || this.request.destroyed || this.request.writableEnded) return false;
    const flushed = new Promise<boolean>((resolve) => {
      this.request.write(piece, (error) => resolve(!error));
    });
    const ok = await withTimeout(flushed, timeoutMs, 'a request body write to flush').catch(() => false);
    if (ok) this.bytesWritten += piece.byteLength;
    return ok;
  }

  /**
   * Writes `data` in pieces of `pieceSize` with `delayMs` between them; stops early when the
   * server answers or the connection breaks. Returns how many bytes were written.
   */
  async writePaced(data: Uint8Array, pieceSize: number, delayMs: number): Promise<number> {
    let written = 0;
    const pieces = Math.ceil(data.byteLength / pieceSize);
    for (let i = 0; i < pieces; i += 1) {
      const piece = data.subarray(i * pieceSize, Math.min(data.byteLength, (i + 1) * pieceSize));
      if (!(await this.write(piece))) break;
      written += piece.byteLength;
      if (delayMs > 0 && i < pieces - 1) await sleep(delayMs);
    }
    return written;
  }

  end(): void {
    if (!this.request.writableEnded && !this.request.destroyed) this.request.end();
  }

  /** Cuts the connection abruptly, as a client losing its network would. */
  destroy(): void {
    this.request.destroy();
  }
}

/** A PATCH over a raw request: headers sent at once, body written by the caller. */
export function rawPatch(uploadUrl: string, offset: number, headers: Record<string, string | number>): RawRequest {
  return new RawRequest(uploadUrl, 'PATCH', { ...TUS, 'Content-Type': OCTET, 'Upload-Offset': offset, ...headers });
}

export type ClientRun = Readonly<{
  upload: Upload;
  /** Resolves with the upload URL on success; rejects with the client's error, on abort(), or after the bound. */
  done: Promise<string>;
  /**
   * Aborts the upload (as a user pressing "pause" would; with `terminate`, also DELETEs it on
   * the server) and settles `done` as rejected with UploadAborted.
   */
  abort(terminate?: boolean): Promise<void>;
}>;

export class UploadAborted extends Error {
  constructor() {
    super('the upload was aborted by the test');
    this.name = 'UploadAborted';
  }
}

/**
 * Starts a real tus-js-client Upload. No URL storage (Node's default is a no-op) and no
 * retries unless asked, so a failure surfaces instead of being retried quietly.
 * `done` is bounded: after `timeoutMs` the upload is aborted and `done` rejects.
 */
export function startClientUpload(input: Buffer | NodeJS.ReadableStream, options: UploadOptions, timeoutMs = 90_000): ClientRun {
  let settle!: { resolve: (url: string) => void; reject: (error: unknown) => void };
  const done = new Promise<string>((resolve, reject) => {
    settle = { resolve, reject };
  });
  const upload: Upload = new Upload(input as Buffer, {
    retryDelays: [],
    storeFingerprintForResuming: false,
    removeFingerprintOnSuccess: false,
    ...options,
    onSuccess: (payload) => {
      options.onSuccess?.(payload);
      if (upload.url) settle.resolve(upload.url);
      else settle.reject(new Error('the upload succeeded without a URL'));
    },
    onError: (error) => {
      options.onError?.(error);
      settle.reject(error);
    },
  });
  const timer = setTimeout(() => {
    settle.reject(new Error(`timed out after ${timeoutMs} ms waiting for a tus-js-client upload to finish`));
    upload.abort().catch(() => undefined);
  }, timeoutMs);
  void done.then(
    () => clearTimeout(timer),
    () => clearTimeout(timer),
  );
  // Callers await `done` when they care; never let a rejection go unhandled meanwhile.
  done.catch(() => undefined);
  upload.start();
  return {
    upload,
    done,
    async abort(terminate = false) {
      try {
        await upload.abort(terminate);
      } finally {
        settle.reject(new UploadAborted());
      }
    },
  };
}

/** Passes bytes through at about `bytesPerSecond`: a slow network link, in-process. */
export class RateLimit extends Transform {
  private readonly started = Date.now();
  private passed = 0;

  constructor(private readonly bytesPerSecond: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.passed += chunk.byteLength;
    const due = this.started + (this.passed / this.bytesPerSecond) * 1000;
    const wait = Math.max(0, due - Date.now());
    if (wait === 0) callback(null, chunk);
    else setTimeout(() => callback(null, chunk), wait);
  }
}

/**
 * tus-js-client's own Node HTTP stack, with request bodies slowed to `bytesPerSecond`, so
 * that an abort, a kill or a shutdown lands in the middle of a PATCH instead of between two.
 */
export function slowHttpStack(bytesPerSecond: number): HttpStack {
  const inner = new DefaultHttpStack({});
  return {
    getName: () => 'SlowNodeHttpStack',
    createRequest(method, url) {
      const request = inner.createRequest(method, url);
      const send = request.send.bind(request);
      request.send = (body: unknown) => {
        if (!(body instanceof Readable)) return send(body);
        const slowed = body.pipe(new RateLimit(bytesPerSecond)) as Readable & { size?: number };
        // tus-js-client sets Content-Length from the stream's size.
        slowed.size = (body as Readable & { size?: number }).size;
        return send(slowed);
      };
      return request;
    },
  };
}
