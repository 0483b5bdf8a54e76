/**
 * The ceiling of e2e/bench/main.ts: the least work on node:http that serves the benchmark's
 * workloads, so "ours ÷ ceiling" says how much of the machine the request path leaves unused.
 * No protocol checks, no locks, no metadata on disk, no durability beyond the file's bytes.
 *
 *   POST  /files      creates STORAGE_DIR/<id>, writes a body if there is one (creation-with-upload),
 *                     201 with Location and Upload-Offset
 *   PATCH /files/<id> pipes the body into the file at Upload-Offset, 204 with the new Upload-Offset
 *   HEAD  /files/<id> 200 with Upload-Offset and Upload-Length from an in-memory map
 *
 * Same contract as the other servers: env HOST, PORT (0 = pick one), STORAGE_DIR, and one line
 * `listening on http://HOST:PORT` on stdout. Imports nothing relative, so it runs as one file
 * compiled to JavaScript, like the reference.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 0);
const directory = process.env.STORAGE_DIR;
if (!directory) {
  process.stderr.write('STORAGE_DIR is required\n');
  process.exit(1);
}
fs.mkdirSync(directory, { recursive: true });

type Upload = { length: number; offset: number };
const uploads = new Map<string, Upload>();
const PREFIX = '/files/';

function answer(res: http.ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Tus-Resumable': '1.0.0', ...headers });
  res.end();
}

/** Writes the request body into the file at `offset`; resolves with the bytes written. */
async function receive(req: http.IncomingMessage, file: string, offset: number, flags: string): Promise<number> {
  const out = fs.createWriteStream(file, { flags, start: offset });
  await pipeline(req, out);
  return out.bytesWritten;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  if (req.method === 'POST' && (url === '/files' || url === PREFIX)) {
    const id = randomBytes(16).toString('hex');
    const upload: Upload = { length: Number(req.headers['upload-length']), offset: 0 };
    uploads.set(id, upload);
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0;
    if (hasBody) upload.offset = await receive(req, path.join(directory!, id), 0, 'w');
    else await fs.promises.writeFile(path.join(directory!, id), '');
    answer(res, 201, { Location: `${PREFIX}${id}`, 'Upload-Offset': String(upload.offset) });
    return;
  }
  const upload = url.startsWith(PREFIX) ? uploads.get(url.slice(PREFIX.length)) : undefined;
  if (!upload) return answer(res, 404);
  if (req.method === 'HEAD') {
    return answer(res, 200, { 'Upload-Offset': String(upload.offset), 'Upload-Length': String(upload.length), 'Cache-Control': 'no-store' });
  }
  if (req.method === 'PATCH') {
    if (Number(req.headers['upload-offset']) !== upload.offset) return answer(res, 409);
    upload.offset += await receive(req, path.join(directory!, url.slice(PREFIX.length)), upload.offset, 'r+');
    return answer(res, 204, { 'Upload-Offset': String(upload.offset) });
  }
  answer(res, 405);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) answer(res, 500);
    else res.destroy();
  });
});
// As the other servers: a slow 1 GiB body must not be cut by Node's default 300 s requestTimeout.
server.requestTimeout = 0;

server.listen(port, host, () => {
  const { port: actual } = server.address() as AddressInfo;
  process.stdout.write(`listening on http://${host}:${actual}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
