/**
 * The reference of the benchmark (e2e/bench/main.ts): a plain @tus/server on node:http with @tus/file-store
 * (STORAGE=file, the default) or @tus/s3-store (STORAGE=s3), with none of this project's code
 * in the request path.
 *
 * Same contract as server/src/main.ts: env HOST, PORT (0 = pick one), STORAGE_DIR, and one
 * line `listening on http://HOST:PORT` on stdout once it accepts connections. With STORAGE=s3
 * also S3_BUCKET, S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY,
 * S3_FORCE_PATH_STYLE and S3_PART_SIZE (bytes, default 8 MiB); S3_PREFIX is ignored (upstream
 * has no key prefix). Every other S3Store option is upstream's default.
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Server, type DataStore } from '@tus/server';
import { FileStore } from '@tus/file-store';
import { S3Store } from '@tus/s3-store';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 0);
const directory = process.env.STORAGE_DIR;
if (!directory) {
  process.stderr.write('STORAGE_DIR is required\n');
  process.exit(1);
}
fs.mkdirSync(directory, { recursive: true });

function s3Store(): S3Store {
  // @tus/s3-store buffers every part in os.tmpdir() and has no option for it. Point os.tmpdir()
  // where this project's server buffers them (STORAGE_DIR/.s3-parts), so the bench measures both alike.
  process.env.TMPDIR = path.join(directory!, '.s3-parts');
  fs.mkdirSync(process.env.TMPDIR, { recursive: true });
  const { S3_BUCKET: bucket, S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = process.env;
  if (!bucket) {
    process.stderr.write('S3_BUCKET is required with STORAGE=s3\n');
    process.exit(1);
  }
  return new S3Store({
    partSize: Number(process.env.S3_PART_SIZE ?? 8 * 1024 ** 2),
    s3ClientConfig: {
      bucket,
      region: process.env.S3_REGION ?? 'us-east-1',
      ...(process.env.S3_ENDPOINT ? { endpoint: process.env.S3_ENDPOINT } : {}),
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
      forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true',
      // Ceph RGW rejects the SDK's default aws-chunked trailing checksums (as in server/src/storage/s3-storage.ts).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
  });
}

const storage = process.env.STORAGE ?? 'file';
if (storage !== 'file' && storage !== 's3') {
  process.stderr.write(`STORAGE must be file or s3, got "${storage}"\n`);
  process.exit(1);
}
const datastore: DataStore = storage === 's3' ? s3Store() : new FileStore({ directory });
const tus = new Server({ path: '/files', datastore });
const server = http.createServer((req, res) => {
  void tus.handle(req, res);
});
// Node's default 300 s requestTimeout would cut a slow 1 GiB body; the app under test sets 0 too.
server.requestTimeout = 0;

server.listen(port, host, () => {
  const { port: actual } = server.address() as AddressInfo;
  process.stdout.write(`listening on http://${host}:${actual}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
