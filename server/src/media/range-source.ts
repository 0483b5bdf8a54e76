import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ByteRange } from '../storage/index.js';

/**
 * The stored bytes of one upload as a seekable HTTP resource on 127.0.0.1, for ffprobe and
 * ffmpeg: they read what they need with Range requests (an MP4's moov at the end is one seek
 * away), each turned into a ranged read of the store (a ranged GetObject on S3, a ranged
 * file read on disk). No full download, no temporary copy, and the tools need no access to
 * files or the network: their protocol whitelist is http,tcp and the only URL they get is
 * this one, whose path is a random token.
 */
export type RangeSource = Readonly<{
  url: string;
  /** Bytes sent to the tool so far. */
  bytesSent(): number;
  requests(): number;
  /** Why a read of the store failed, if one did: the tool's failure is then not the file's fault. */
  readError(): Error | undefined;
  close(): Promise<void>;
}>;

const RANGE = /^bytes=(\d*)-(\d*)$/;

export async function openRangeSource(size: number, read: (range: ByteRange) => Promise<Readable>): Promise<RangeSource> {
  const token = randomBytes(16).toString('hex');
  let sent = 0;
  let requests = 0;
  let failure: Error | undefined;
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    requests += 1;
    if (req.url !== `/${token}` || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    let end = size - 1;
    const match = req.headers.range ? RANGE.exec(req.headers.range) : null;
    if (req.headers.range && match) {
      if (match[1] === '' && match[2] !== '') start = Math.max(0, size - Number(match[2]));
      else {
        start = Number(match[1]);
        if (match[2] !== '') end = Math.min(end, Number(match[2]));
      }
    }
    if (size === 0 || start > end || start >= size) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
      return;
    }
    const headers = { 'Accept-Ranges': 'bytes', 'Content-Length': String(end - start + 1), 'Content-Type': 'application/octet-stream' };
    const partial = req.headers.range !== undefined && match !== null;
    res.writeHead(partial ? 206 : 200, partial ? { ...headers, 'Content-Range': `bytes ${start}-${end}/${size}` } : headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    /** The store's bytes, counted; only a failure of the store itself is recorded as one. */
    async function* fromStore() {
      let body: Readable;
      try {
        body = await read({ start, end });
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
        throw error;
      }
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          sent += chunk.byteLength;
          yield chunk;
        }
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
        throw error;
      } finally {
        body.destroy();
      }
    }
    // The tool hangs up when it seeks elsewhere: the generator is returned (not thrown into),
    // the store's stream destroyed, and nothing is recorded as failed.
    pipeline(fromStore(), res).catch(() => res.destroy());
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${token}`,
    bytesSent: () => sent,
    requests: () => requests,
    readError: () => failure,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
