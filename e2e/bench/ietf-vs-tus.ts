/**
 * One file uploaded in one request by each protocol, to the same server: tus 1.0
 * (creation-with-upload: POST with Upload-Length and the whole body) against the IETF draft
 * (POST with Upload-Draft-Interop-Version 8 and Upload-Complete: ?1), interleaved so both see
 * the same machine, for a few rounds. Reports MB/s per upload and the median ratio.
 *
 *   npx tsx e2e/bench/ietf-vs-tus.ts [--s3] [--size 1GiB] [--rounds 3]
 *
 * With --s3 the server stores on the local Ceph RGW (started if needed) in a bucket of its
 * own, under its own S3_PREFIX; the bucket is emptied and removed at the end.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { makeFile } from '../support/files.js';
import { serverSpecs, startServer, stopServer } from './bench-servers.js';
import { openCephS3, type CephS3 } from './ceph-s3.js';
import { installProcessControl } from './process-control.js';
import { median, parseSize, round1, round2 } from './units.js';

type Protocol = 'tus' | 'ietf';

const HEADERS: Readonly<Record<Protocol, Record<string, string>>> = {
  tus: { 'Tus-Resumable': '1.0.0', 'Content-Type': 'application/offset+octet-stream' },
  ietf: { 'Upload-Draft-Interop-Version': '8', 'Upload-Complete': '?1' },
};

/** Streams the file as one creation request; resolves with the upload URL and the seconds to the final response. */
function upload(endpoint: string, protocol: Protocol, file: string, size: number): Promise<{ url: string; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(endpoint, {
      method: 'POST',
      agent: false,
      headers: { ...HEADERS[protocol], 'Upload-Length': String(size), 'Content-Length': String(size) },
      timeout: 600_000,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        const seconds = (performance.now() - started) / 1000;
        if (res.statusCode !== 201) reject(new Error(`${protocol} upload answered ${res.statusCode}`));
        else resolve({ url: new URL(res.headers.location ?? '', endpoint).href, seconds });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${protocol} upload timed out`)));
    req.on('error', reject);
    fs.createReadStream(file).pipe(req);
  });
}

async function remove(url: string, protocol: Protocol): Promise<void> {
  const res = await fetch(url, { method: 'DELETE', headers: protocol === 'tus' ? { 'Tus-Resumable': '1.0.0' } : { 'Upload-Draft-Interop-Version': '8' } });
  if (res.status !== 204) throw new Error(`DELETE ${url} answered ${res.status}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { s3: { type: 'boolean', default: false }, size: { type: 'string', default: '1GiB' }, rounds: { type: 'string', default: '3' } } });
  const size = parseSize(values.size);
  const rounds = Number(values.rounds);
  const done = installProcessControl(60 * 60_000);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'ietf-vs-tus-'));
  let s3: CephS3 | undefined;
  try {
    if (values.s3) s3 = await openCephS3({ startTimeoutMs: 600_000, log: (line) => process.stdout.write(line) });
    const file = await makeFile(work, 'upload.bin', size, 'ietf-vs-tus');
    const storageEnv = s3 ? { ...s3.env, STORAGE: 's3', S3_PART_SIZE: '64MiB', S3_PREFIX: `ietf-vs-tus-${process.pid}/` } : { STORAGE: 'file' };
    const [spec] = serverSpecs([s3 ? 'A-s3' : 'A-file']);
    const storageDir = path.join(work, 'storage');
    await fsp.mkdir(storageDir);
    const server = await startServer(spec!, storageDir, storageEnv);
    const endpoint = `${server.url}/files`;
    const speeds: Record<Protocol, number[]> = { tus: [], ietf: [] };
    try {
      for (let round = 1; round <= rounds; round += 1) {
        // Alternate which goes first, so neither always meets a warmer cache.
        const order: Protocol[] = round % 2 === 1 ? ['tus', 'ietf'] : ['ietf', 'tus'];
        for (const protocol of order) {
          const { url, seconds } = await upload(endpoint, protocol, file.path, size);
          const mbps = size / 1e6 / seconds;
          speeds[protocol].push(mbps);
          process.stdout.write(`round ${round} ${protocol.padEnd(4)} ${round1(mbps)} MB/s (${round2(seconds)} s)\n`);
          await remove(url, protocol);
          await s3?.empty();
        }
      }
    } finally {
      await stopServer(server);
    }
    const tus = median(speeds.tus);
    const ietf = median(speeds.ietf);
    process.stdout.write(`\n${s3 ? 's3' : 'file'} storage, ${values.size} in one request, ${rounds} rounds: median tus ${round1(tus)} MB/s, IETF ${round1(ietf)} MB/s, IETF ÷ tus ${round2(ietf / tus)}\n`);
  } finally {
    await s3?.close();
    await fsp.rm(work, { recursive: true, force: true });
    done();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
