import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig, type Env } from '../config.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, headUpload, patchUpload, TUS } from '../testing/http-test-helpers.js';
import { createStorage } from './index.js';

// S3 that stops answering (issue 9: a full Ceph OSD accepted writes and never completed them,
// and POSTs hung for more than 90 s). Every call to S3 has a connection and an idle limit; a
// call that hits one answers 503 with Retry-After like any other S3 failure.

/** S3_CONNECT_TIMEOUT and S3_REQUEST_TIMEOUT of these tests. */
const TIMEOUT_MS = 1_000;
/** Time for everything but the wait itself (SDK set-up, signing, our handlers) on a busy 2-core box; a retry would need another TIMEOUT_MS. */
const SLACK_MS = 1_900;
/** Where a request that hangs is given up, so the test fails instead of waiting for vitest. */
const HANG_MS = 10_000;

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

type FakeEndpoint = Readonly<{ endpoint: string; connections(): number; close(): Promise<void> }>;

/**
 * A TCP server on 127.0.0.1 that accepts connections and then does `onConnection` (by
 * default: nothing, ever). close() ends the server and every socket it holds.
 */
async function fakeEndpoint(onConnection: (socket: net.Socket) => void = () => undefined): Promise<FakeEndpoint> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const server = net.createServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answers the first request on each connection with a 200 and a few bytes of a longer body, then nothing. */
const stallMidBody = (socket: net.Socket) => {
  socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":'));
};

function s3Env(endpoint: string, overrides: Env = {}): Env {
  return {
    STORAGE: 's3',
    S3_BUCKET: 'silent-bucket',
    S3_ENDPOINT: endpoint,
    S3_REGION: 'us-east-1',
    S3_ACCESS_KEY_ID: 'test-key',
    S3_SECRET_ACCESS_KEY: 'test-secret',
    S3_FORCE_PATH_STYLE: 'true',
    S3_CONNECT_TIMEOUT: `${TIMEOUT_MS}ms`,
    S3_REQUEST_TIMEOUT: `${TIMEOUT_MS}ms`,
    ...overrides,
  };
}

/** The promise's value and how long it took, or a failure once it has hung for HANG_MS. */
async function timed<T>(what: string, promise: T | Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${HANG_MS} ms (hangs)`)), HANG_MS);
  });
  try {
    const value = await Promise.race([promise, hang]);
    return { value, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** A 503 ERR_SERVICE_UNAVAILABLE with Retry-After, once the timeout passed and not much later (no retries). */
async function expectUnavailable(what: string, request: Response | Promise<Response>): Promise<void> {
  const { value: res, ms } = await timed(what, request);
  expect(res.status, what).toBe(503);
  // A HEAD answer has no body.
  if (!what.startsWith('HEAD')) expect((await res.text()).split(':')[0], what).toBe('ERR_SERVICE_UNAVAILABLE');
  expect(res.headers.get('retry-after'), what).toBe('5');
  expect(ms, `${what} answered after ${Math.round(ms)} ms`).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
  expect(ms, `${what} answered after ${Math.round(ms)} ms`).toBeLessThan(TIMEOUT_MS + SLACK_MS);
}

const UPLOAD_PATH = `/files/${randomBytes(16).toString('hex')}`;

describe('S3 that accepts connections and never answers', () => {
  let silent: FakeEndpoint;
  let t: TestApp;

  beforeAll(async () => {
    silent = await fakeEndpoint();
    t = await createTestApp(s3Env(silent.endpoint));
  });

  afterAll(async () => {
    await t?.cleanup();
    await silent?.close();
  });

  it('POST answers 503 with Retry-After after S3_REQUEST_TIMEOUT', async () => {
    await expectUnavailable('POST', t.app.request('/files/', { method: 'POST', headers: { ...TUS, 'Upload-Length': '10' } }));
    expect(silent.connections()).toBeGreaterThan(0);
  });

  it('HEAD answers 503', async () => {
    await expectUnavailable('HEAD', headUpload(t.app, UPLOAD_PATH));
  });

  it('PATCH answers 503', async () => {
    await expectUnavailable('PATCH', patchUpload(t.app, UPLOAD_PATH, 0, 'hello'));
  });

  it('GET (download) answers 503', async () => {
    await expectUnavailable('GET', t.app.request(UPLOAD_PATH, { headers: TUS }));
  });

  it('DELETE answers 503, without going on to remove the upload unchecked by pre-terminate', async () => {
    await expectUnavailable('DELETE', t.app.request(UPLOAD_PATH, { method: 'DELETE', headers: TUS }));
  });

  it('/readyz answers 503 unavailable', async () => {
    const { value: res, ms } = await timed('/readyz', t.app.request('/readyz'));
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', reason: 's3 storage is not writable' });
    expect(ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  });

  it("storage's startup check fails naming S3_REQUEST_TIMEOUT", async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-silent-'));
    try {
      const storage = await createStorage(parseConfig({ ...s3Env(silent.endpoint), STORAGE_DIR: directory }));
      const { value: error, ms } = await timed('checkReady', storage.checkReady().then(() => undefined, (e: unknown) => e));
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toBe(`bucket silent-bucket is not reachable at ${silent.endpoint}: no answer for 1 s (S3_REQUEST_TIMEOUT)`);
      expect(ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    } finally {
      await fs.rm(directory, { recursive: true, force: true });
    }
  });
});

describe('S3 that answers headers and then stalls mid-body', () => {
  let stalling: FakeEndpoint;
  let t: TestApp;

  beforeAll(async () => {
    stalling = await fakeEndpoint(stallMidBody);
    t = await createTestApp(s3Env(stalling.endpoint));
  });

  afterAll(async () => {
    await t?.cleanup();
    await stalling?.close();
  });

  it('HEAD (reading the upload info object) answers 503 after S3_REQUEST_TIMEOUT', async () => {
    await expectUnavailable('HEAD', headUpload(t.app, UPLOAD_PATH));
  });

  it('GET (download) answers 503', async () => {
    await expectUnavailable('GET', t.app.request(UPLOAD_PATH, { headers: TUS }));
  });
});

describe('the server process at startup', () => {
  let silent: FakeEndpoint;
  let directory: string;
  const children: number[] = [];

  beforeAll(async () => {
    silent = await fakeEndpoint();
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-s3-startup-'));
  });

  afterEach(() => {
    for (const pid of children.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  afterAll(async () => {
    await silent?.close();
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('exits 1 with a message naming S3_BUCKET and S3_REQUEST_TIMEOUT, instead of hanging', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], {
      cwd: REPO_ROOT,
      env: { ...s3Env(silent.endpoint), STORAGE_DIR: directory, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid) children.push(child.pid);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.resume();
    // Start-up (TypeScript compiled on the fly) takes a few seconds here: HANG_MS covers it.
    const { value: code } = await timed('the server process', new Promise<number | null>((resolve) => child.once('exit', resolve)));
    expect(stderr).toContain(`S3_BUCKET: cannot use bucket silent-bucket for uploads: bucket silent-bucket is not reachable at ${silent.endpoint}: no answer for 1 s (S3_REQUEST_TIMEOUT)`);
    expect(code).toBe(1);
  });
});

/** About 4 MiB/s: the 16 MiB download takes 4 s. */
const BYTES_PER_MS = 4 * 1024;
const SLOW_OBJECT = 16 * 1024 * 1024;
/** The idle limit of the slow-S3 test: half the time the download takes. */
const SLOW_TIMEOUT_MS = 2_000;

/**
 * Copies `from` to `to` at BYTES_PER_MS, reading no faster than that (a budget per elapsed
 * time, so a late timer on a busy machine does not slow it down further).
 */
function throttle(from: net.Socket, to: net.Socket): void {
  const queue: Buffer[] = [];
  let queued = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    let budget = Math.round((now - last) * BYTES_PER_MS);
    last = now;
    while (budget > 0 && queue.length > 0) {
      const head = queue[0] as Buffer;
      const piece = head.subarray(0, budget);
      to.write(piece);
      budget -= piece.length;
      queued -= piece.length;
      if (piece.length === head.length) queue.shift();
      else queue[0] = head.subarray(piece.length);
    }
    if (queued < 256 * 1024) from.resume();
  }, 10);
  from.on('data', (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= 256 * 1024) from.pause();
  });
  from.on('close', () => clearInterval(timer));
  to.on('close', () => clearInterval(timer));
}

// S3_REQUEST_TIMEOUT is an idle limit, not a wall-clock one: a call that keeps moving is not
// cut however long it takes. Tested on what the server receives (a download, processing's
// reads), where progress is what arrives. For what it sends (parts), progress is what the
// kernel accepts: on loopback the kernels buffer most of a part at once, and then the wait
// for S3's answer (the buffers draining, S3 storing the part, seconds on a loaded Ceph) is
// silence to the client. Hence a default of 30 s, far above that.
describe('a slow S3 that keeps moving', () => {
  const s3 = inject('s3');
  const env = s3ServerEnv(s3, { S3_PREFIX: `timeouts-${randomBytes(4).toString('hex')}/` });
  let proxy: net.Server | undefined;
  const sockets = new Set<net.Socket>();
  /** Uploads straight to S3, with the default limits (S3 under load may take seconds to store a part). */
  let writer: TestApp;
  /** Reads the same uploads through a proxy that slows down what S3 sends. */
  let reader: TestApp;

  beforeAll(async () => {
    const target = new URL(s3.endpoint);
    proxy = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      throttle(upstream, client);
    });
    await new Promise<void>((resolve) => proxy?.listen(0, '127.0.0.1', resolve));
    const { port } = proxy.address() as net.AddressInfo;
    writer = await createTestApp(env);
    reader = await createTestApp({ ...env, S3_ENDPOINT: `http://127.0.0.1:${port}`, S3_REQUEST_TIMEOUT: `${SLOW_TIMEOUT_MS}ms` });
  });

  afterAll(async () => {
    await reader?.cleanup();
    await writer?.cleanup();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  });

  it('is not cut: a download that takes twice S3_REQUEST_TIMEOUT arrives whole', async () => {
    const data = randomBytes(SLOW_OBJECT);
    const { path: uploadPath } = await createUpload(writer.app, { 'Upload-Length': String(data.length) });
    expect((await patchUpload(writer.app, uploadPath, 0, data)).status).toBe(204);

    const download = await timed('GET', Promise.resolve(reader.app.request(uploadPath, { headers: TUS })).then(async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) })));
    expect(download.value.status).toBe(200);
    expect(download.value.body.equals(data)).toBe(true);
    // Otherwise the test proves nothing: the transfer must outlast the idle limit.
    expect(download.ms).toBeGreaterThan(2 * SLOW_TIMEOUT_MS);
  });
});
