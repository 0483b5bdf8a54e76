import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Hono } from 'hono';
import { onTestFinished, vi } from 'vitest';
import type { AppEnv } from '../http/app-env.js';

/** Test helpers shared by the *.test.ts files under server/src. Not used by the server. */

export const TUS = { 'Tus-Resumable': '1.0.0' } as const;
export const OFFSET_STREAM = 'application/offset+octet-stream';

type App = Hono<AppEnv>;

/** The upload id at the end of a Location header (absolute or relative). */
export function idFromLocation(location: string | null): string {
  if (!location) throw new Error('response has no Location header');
  const id = new URL(location, 'http://localhost').pathname.split('/').pop();
  if (!id) throw new Error(`no upload id in Location ${location}`);
  return id;
}

/** POST /files through app.request(); returns the response and the new upload's id and path. */
export async function createUpload(
  app: App,
  headers: Record<string, string>,
  body?: string | Uint8Array,
): Promise<{ res: Response; id: string; path: string }> {
  const init: RequestInit = { method: 'POST', headers: { Host: 'localhost', ...TUS, ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : new Uint8Array(body);
    (init.headers as Record<string, string>)['Content-Type'] ??= OFFSET_STREAM;
    (init.headers as Record<string, string>)['Content-Length'] ??= String(Buffer.byteLength(body));
  }
  const res = await app.request('http://localhost/files', init);
  if (res.status !== 201) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
  const id = idFromLocation(res.headers.get('location'));
  return { res, id, path: `/files/${id}` };
}

/** PATCH through app.request() with the right Content-Type and Content-Length. */
export function patchUpload(app: App, uploadPath: string, offset: number, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(
    app.request(uploadPath, {
      method: 'PATCH',
      headers: {
        ...TUS,
        'Upload-Offset': String(offset),
        'Content-Type': OFFSET_STREAM,
        'Content-Length': String(Buffer.byteLength(body)),
        ...headers,
      },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    }),
  );
}

export function headUpload(app: App, uploadPath: string): Promise<Response> {
  return Promise.resolve(app.request(uploadPath, { method: 'HEAD', headers: TUS }));
}

/** Creates an upload and sends all of `content` in one PATCH; returns its id and path. */
export async function createFinishedUpload(app: App, content: string | Uint8Array, metadata?: Record<string, string>): Promise<{ id: string; path: string }> {
  const headers: Record<string, string> = { 'Upload-Length': String(Buffer.byteLength(content)) };
  if (metadata) headers['Upload-Metadata'] = encodeMetadata(metadata);
  const created = await createUpload(app, headers);
  if (Buffer.byteLength(content) > 0) {
    const res = await patchUpload(app, created.path, 0, content);
    if (res.status !== 204) throw new Error(`PATCH answered ${res.status}: ${await res.text()}`);
  }
  return created;
}

export function encodeMetadata(metadata: Record<string, string>): string {
  return Object.entries(metadata)
    .map(([key, value]) => `${key} ${Buffer.from(value, 'utf8').toString('base64')}`)
    .join(',');
}

/** Rewrites the creation date in an upload's `<id>.json` record, to make it look old. */
/**
 * Lets `ms` pass for everything in this process that reads the date (expiry, retention, token
 * ages), until the test ends. An app under test keeps the uploads it wrote in memory (one
 * instance sees every change), so an upload made older on disk behind its back would not age
 * for it: time passes instead. Timers are untouched.
 */
export function advanceClock(ms: number): void {
  // The faked date keeps moving with the real one (waits measured with Date.now() still end).
  vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
  vi.setSystemTime(Date.now() + ms);
  onTestFinished(() => void vi.useRealTimers());
}

/** An upload's record on disk made `ageMs` old: for storage read without an app (which would not see it: advanceClock). */
export async function backdateUpload(storageDir: string, id: string, ageMs: number): Promise<void> {
  const file = path.join(storageDir, `${id}.json`);
  const record = JSON.parse(await fs.readFile(file, 'utf8')) as { creation_date?: string };
  record.creation_date = new Date(Date.now() - ageMs).toISOString();
  await fs.writeFile(file, JSON.stringify(record));
}

export async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` every `intervalMs` until it returns true, at most `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, { timeoutMs = 5_000, intervalMs = 20 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 10_000; attempt += 1) {
    if (await check()) return;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

export type RawResponse = {
  /** 0 when the server closed the connection without answering. */
  status: number;
  /** Lower-cased header names; a header sent more than once has its values joined with ', '. */
  headers: Record<string, string>;
  body: string;
};

export type RawRequestOptions = {
  /** Fail (reject) when no complete response arrived by then. */
  timeoutMs?: number;
  /** The request is a HEAD: the response has no body whatever Content-Length says. */
  head?: boolean;
};

function parseResponse(data: Buffer, head: boolean, closed: boolean): RawResponse | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return closed && data.length === 0 ? { status: 0, headers: {}, body: '' } : undefined;
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const rest = data.subarray(end + 4);
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, headers, body: '' };
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (rest.length >= length) return { status, headers, body: rest.subarray(0, length).toString('utf8') };
    return closed ? { status, headers, body: rest.toString('utf8') } : undefined;
  }
  if (headers['transfer-encoding']?.includes('chunked')) {
    const text = rest.toString('latin1');
    if (!text.includes('0\r\n\r\n') && !closed) return undefined;
    let body = '';
    let cursor = 0;
    for (let i = 0; i < 10_000 && cursor < text.length; i += 1) {
      const lineEnd = text.indexOf('\r\n', cursor);
      if (lineEnd === -1) break;
      const size = parseInt(text.slice(cursor, lineEnd), 16);
      if (!Number.isFinite(size) || size === 0) break;
      body += text.slice(lineEnd + 2, lineEnd + 2 + size);
      cursor = lineEnd + 2 + size + 2;
    }
    return { status, headers, body: Buffer.from(body, 'latin1').toString('utf8') };
  }
  return closed ? { status, headers, body: rest.toString('utf8') } : undefined;
}

/**
 * Opens a TCP connection to 127.0.0.1 and parses the first response that comes back, while
 * the test writes the request at its own pace (part of a body, then a pause, then destroy).
 * `response` rejects when no complete response arrived within `timeoutMs`; the socket is
 * destroyed once it settles.
 */
export function openRawConnection(port: number, { timeoutMs = 5_000, head = false }: RawRequestOptions = {}): { socket: net.Socket; response: Promise<RawResponse> } {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const response = new Promise<RawResponse>((resolve, reject) => {
    let data = Buffer.alloc(0);
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      const parsed = parseResponse(data, head, closed);
      if (!parsed && !closed) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (parsed) resolve(parsed);
      else reject(new Error(`connection closed mid-response: ${JSON.stringify(data.toString('latin1').slice(0, 200))}`));
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`no complete response within ${timeoutMs} ms; got ${JSON.stringify(data.toString('latin1').slice(0, 200))}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      finish(false);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
  return { socket, response };
}

/**
 * Sends bytes exactly as given over a fresh TCP connection to 127.0.0.1 and resolves with
 * the first response, parsed. Lets tests send what Node's and undici's clients refuse to
 * (raw control characters, bad methods, conflicting lengths). Always closes the socket.
 */
export function rawRequest(port: number, request: string | Buffer, { timeoutMs = 5_000, head }: RawRequestOptions = {}): Promise<RawResponse> {
  const bytes = typeof request === 'string' ? Buffer.from(request, 'latin1') : request;
  const isHead = head ?? bytes.subarray(0, 5).toString('latin1') === 'HEAD ';
  const { socket, response } = openRawConnection(port, { timeoutMs, head: isHead });
  socket.write(bytes);
  return response;
}

/** Builds a raw HTTP/1.1 request; a `Host` and `Connection: close` are added unless given. */
export function buildRequest(method: string, target: string, headers: Record<string, string> = {}, body: string | Buffer = ''): Buffer {
  const all: Record<string, string> = { Host: '127.0.0.1', Connection: 'close', ...headers };
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(all)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), typeof body === 'string' ? Buffer.from(body, 'latin1') : body]);
}
