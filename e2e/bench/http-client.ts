/**
 * The upload client: raw node:http over keep-alive agents, bodies streamed from one
 * pre-generated 8 MiB random buffer with backpressure, so it costs the same for every server
 * and never holds a file in memory.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { MiB } from './units.js';

const payload = randomBytes(8 * MiB);
export const TUS_HEADERS = { 'Tus-Resumable': '1.0.0' } as const;
const TUS = TUS_HEADERS;

export type Reply = { status: number; headers: http.IncomingHttpHeaders; body: string };

export function request(agent: http.Agent, url: string, method: string, headers: Record<string, string>, bodyLength: number, signal: AbortSignal): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { ...headers, 'Content-Length': String(bodyLength) }, signal });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        if (body.length < 4000) body += text;
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    writeBody(req, bodyLength).catch((error: unknown) => {
      req.destroy(error as Error);
      reject(error as Error);
    });
  });
}

/** Writes `length` bytes of the shared buffer, waiting for 'drain' whenever write() says so. */
async function writeBody(req: http.ClientRequest, length: number): Promise<void> {
  let left = length;
  while (left > 0) {
    const n = Math.min(left, payload.length);
    left -= n;
    if (!req.write(n === payload.length ? payload : payload.subarray(0, n))) {
      await new Promise<void>((resolve, reject) => {
        const cleanup = () => {
          req.off('drain', onDrain);
          req.off('error', onError);
          req.off('close', onClose);
        };
        const onDrain = () => {
          cleanup();
          resolve();
        };
        const onError = (error: Error) => {
          cleanup();
          reject(error);
        };
        const onClose = () => {
          cleanup();
          reject(new Error('connection closed while sending the body'));
        };
        req.on('drain', onDrain);
        req.on('error', onError);
        req.on('close', onClose);
      });
    }
  }
  req.end();
}

export type Created = { uploadUrl: string; uploadId: string; offset: number };

/** POST: creates an upload of `length` bytes, sending the first `bodyLength` bytes with it (creation-with-upload). */
export async function createUpload(agent: http.Agent, base: string, length: number, signal: AbortSignal, bodyLength = 0): Promise<Created> {
  const headers: Record<string, string> = { ...TUS, 'Upload-Length': String(length) };
  if (bodyLength > 0) headers['Content-Type'] = 'application/offset+octet-stream';
  const reply = await request(agent, `${base}/files`, 'POST', headers, bodyLength, signal);
  const location = reply.headers.location;
  const offset = Number(reply.headers['upload-offset'] ?? 0);
  if (reply.status !== 201 || !location) throw new Error(`POST answered ${reply.status}: ${reply.body}`);
  if (bodyLength > 0 && offset !== bodyLength) throw new Error(`POST with ${bodyLength} bytes answered Upload-Offset ${reply.headers['upload-offset']}`);
  const uploadUrl = new URL(location, base).href;
  return { uploadUrl, uploadId: new URL(uploadUrl).pathname.split('/').pop()!, offset };
}

const checksums = new Map<number, string>();

/**
 * `Upload-Checksum: sha256 ...` of a body of `length` bytes as request() sends it (the shared
 * buffer over and over), computed once per length: the client's hashing stays out of the run.
 */
export function bodyChecksum(length: number): string {
  let value = checksums.get(length);
  if (value === undefined) {
    const hash = createHash('sha256');
    for (let left = length; left > 0; left -= payload.length) hash.update(payload.subarray(0, Math.min(left, payload.length)));
    value = `sha256 ${hash.digest('base64')}`;
    checksums.set(length, value);
  }
  return value;
}

/**
 * PATCHes bytes `from`..`to` of an upload in PATCHes of `patchSize`; returns how many PATCHes.
 * With `checksum`, every PATCH carries Upload-Checksum (bodyChecksum() computes them before the run).
 */
export async function patchRange(agent: http.Agent, uploadUrl: string, from: number, to: number, patchSize: number, signal: AbortSignal, checksum = false): Promise<number> {
  let offset = from;
  let patches = 0;
  while (offset < to) {
    const length = Math.min(patchSize, to - offset);
    const headers: Record<string, string> = { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' };
    if (checksum) headers['Upload-Checksum'] = bodyChecksum(length);
    const reply = await request(agent, uploadUrl, 'PATCH', headers, length, signal);
    patches++;
    const newOffset = Number(reply.headers['upload-offset']);
    if (reply.status !== 204 || newOffset !== offset + length) {
      throw new Error(`PATCH at ${offset} answered ${reply.status}, Upload-Offset ${reply.headers['upload-offset']}: ${reply.body}`);
    }
    offset = newOffset;
  }
  return patches;
}

/** HEAD: the upload's offset, checking the answer is a tus 200. */
export async function headOffset(agent: http.Agent, uploadUrl: string, signal: AbortSignal): Promise<number> {
  const reply = await request(agent, uploadUrl, 'HEAD', { ...TUS }, 0, signal);
  if (reply.status !== 200) throw new Error(`HEAD answered ${reply.status}`);
  return Number(reply.headers['upload-offset']);
}

export const keepAlive = (maxSockets: number) => new http.Agent({ keepAlive: true, maxSockets });
