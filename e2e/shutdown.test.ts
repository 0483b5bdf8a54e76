import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ByteSource, makeFile, MiB, KiB, sha256, type TestFile } from './support/files.js';
import { findFreePort, pollUntil, Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS } from './support/stores.js';
import { createUpload, download, fetchWithin, head, rawPatch, slowHttpStack, startClientUpload, waitForStoredBytes } from './support/tus.js';
import { uploadIdOf } from './support/status.js';

const SHUTDOWN_TIMEOUT_S = 10;

/** SIGTERM: new requests get 503, responses in flight are finished, the process exits 0. */
describe('graceful shutdown', () => {
  const testScope = new Scope();
  afterEach(() => testScope.dispose());

  it('answers 503 to a request that arrives while it drains, finishes the download in flight, then exits 0', async () => {
    // A long SHUTDOWN_TIMEOUT: the server keeps draining until our download completes.
    const server = await testScope.server({ env: { SHUTDOWN_TIMEOUT: '60s' } });
    // Larger than the socket buffers can hold, so the response is still in flight at SIGTERM.
    const size = 64 * MiB;
    const content = new ByteSource('shutdown-download').bytes(0, size);
    const run = startClientUpload(content, { endpoint: server.endpoint, chunkSize: 16 * MiB });
    const url = new URL(await run.done);

    // A download the client reads one piece of and then stops reading: the response stays
    // in flight (socket buffers full), which keeps the server draining.
    const download = await openPausedDownload(url);
    testScope.defer(() => download.socket.destroy());
    const socket = download.socket;

    server.kill('SIGTERM');
    await server.waitForLog((line) => line.msg === 'shutting down', 'shutting down');
    // The server no longer accepts connections...
    await pollUntil(
      () =>
        new Promise<true | undefined>((resolve) => {
          const probe = net.connect(Number(url.port), '127.0.0.1');
          probe.once('connect', () => {
            probe.destroy();
            resolve(undefined);
          });
          probe.once('error', () => resolve(true));
        }),
      'new connections to be refused',
    );

    // ...but a request on the open connection (pipelined behind the download) gets 503.
    socket.write(`POST /files/ HTTP/1.1\r\nHost: ${url.host}\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 10\r\nContent-Length: 0\r\n\r\n`);
    await server.waitForLog((line) => line.method === 'POST' && line.status === 503, 'the POST answered 503');

    socket.resume();
    await withTimeout(download.closed, 30_000, 'the server to close the connection');
    const exit = await withTimeout(server.exited, 15_000, 'the server to exit');
    expect(exit).toEqual({ code: 0, signal: null });

    const all = download.received();
    const firstHeadEnd = all.indexOf('\r\n\r\n');
    const firstHead = all.subarray(0, firstHeadEnd).toString('latin1');
    expect(firstHead.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(firstHead).toMatch(new RegExp(`\\r\\ncontent-length: ${size}\\r\\n`, 'i'));
    const body = all.subarray(firstHeadEnd + 4, firstHeadEnd + 4 + size);
    expect(body.byteLength).toBe(size);
    expect(sha256(body)).toBe(sha256(content));

    const rest = all.subarray(firstHeadEnd + 4 + size).toString('latin1');
    const [statusLine] = rest.split('\r\n');
    expect(statusLine).toBe('HTTP/1.1 503 Service Unavailable');
    expect(rest).toMatch(/\r\nretry-after: 5\r\n/i);
    expect(rest).toMatch(/\r\nconnection: close\r\n/i);
    expect(rest).toContain('ERR_SERVER_SHUTTING_DOWN');
  });

  it('closes a keep-alive connection once its in-flight response ends, and exits without waiting for SHUTDOWN_TIMEOUT', async () => {
    // SHUTDOWN_TIMEOUT is long; nothing else is in flight: once the download in progress at
    // SIGTERM has been delivered, the server has nothing left to wait for.
    const server = await testScope.server({ env: { SHUTDOWN_TIMEOUT: '120s' } });
    // Larger than the socket buffers can hold, so the response is still in flight at SIGTERM.
    const size = 64 * MiB;
    const content = new ByteSource('shutdown-keepalive').bytes(0, size);
    const run = startClientUpload(content, { endpoint: server.endpoint, chunkSize: 16 * MiB });
    const url = new URL(await run.done);

    const download = await openPausedDownload(url);
    testScope.defer(() => download.socket.destroy());
    server.kill('SIGTERM');
    await server.waitForLog((line) => line.msg === 'shutting down', 'shutting down');
    download.socket.resume();

    // The client reads the whole response and keeps its (HTTP/1.1 keep-alive) connection open,
    // as browsers and connection pools do.
    await pollUntil(() => (download.receivedBytes() >= size ? true : undefined), 'the download to complete', 30_000);
    const all = download.received();
    const headEnd = all.indexOf('\r\n\r\n');
    expect(sha256(all.subarray(headEnd + 4, headEnd + 4 + size))).toBe(sha256(content));

    // Expected: the server closes the now idle connection and exits 0 (well before 120 s).
    await withTimeout(download.closed, 20_000, 'the server to close the idle keep-alive connection after its response ended');
    const exit = await withTimeout(server.exited, 10_000, 'the server to exit');
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('gives up on a client that never finishes after SHUTDOWN_TIMEOUT, closes it and still exits 0', async () => {
    const server = await testScope.server({ env: { SHUTDOWN_TIMEOUT: '2s' } });
    const content = new ByteSource('shutdown-overrun').bytes(0, 64 * MiB);
    const url = new URL(await startClientUpload(content, { endpoint: server.endpoint, chunkSize: 32 * MiB }).done);
    // A download the client stops reading and never resumes.
    const download = await openPausedDownload(url);
    testScope.defer(() => download.socket.destroy());

    server.kill('SIGTERM');
    const exit = await withTimeout(server.exited, (2 + 10) * 1000, 'the server to exit after SHUTDOWN_TIMEOUT');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(server.logs().some((line) => line.msg === 'shutdown timeout reached; closing remaining connections')).toBe(true);
    // Reading again, the client finds its connection closed.
    download.socket.resume();
    await withTimeout(download.closed, 5_000, 'the stuck connection to be closed');
  });

  it('exits 0 on SIGINT too, and a second signal ends a draining server at once', async () => {
    const quiet = await testScope.server();
    // Any answer means main() has run to its end (signal handlers installed).
    expect((await fetchWithin(`${quiet.url}/healthz`)).status).toBe(200);
    quiet.kill('SIGINT');
    expect(await withTimeout(quiet.exited, 15_000, 'the server to exit on SIGINT')).toEqual({ code: 0, signal: null });

    const busy = await testScope.server({ env: { SHUTDOWN_TIMEOUT: '120s' } });
    const content = new ByteSource('shutdown-twice').bytes(0, 64 * MiB);
    const url = new URL(await startClientUpload(content, { endpoint: busy.endpoint, chunkSize: 32 * MiB }).done);
    const download = await openPausedDownload(url);
    testScope.defer(() => download.socket.destroy());
    busy.kill('SIGTERM');
    await busy.waitForLog((line) => line.msg === 'shutting down', 'shutting down');
    expect(busy.exitInfo).toBeUndefined();
    busy.kill('SIGTERM');
    const exit = await withTimeout(busy.exited, 10_000, 'the second SIGTERM to end the server');
    expect(exit.code === 0 ? 'exit 0' : exit.signal).not.toBe('exit 0');
  });

  it('shuts down gracefully (exit 0) on a SIGTERM sent the moment it reports "listening on"', async () => {
    // A supervisor may stop a process as soon as it is ready (a rollout undone at once).
    // Once the server says it is listening, SIGTERM must mean a graceful stop, not death by signal.
    // Five tries: a server that is not ready for signals when it says so fails nearly every one.
    const exits = [];
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const server = await testScope.server({ onReady: (pid) => process.kill(pid, 'SIGTERM') });
      exits.push(await withTimeout(server.exited, 15_000, 'the server to exit'));
    }
    expect(exits).toEqual(Array.from({ length: 5 }, () => ({ code: 0, signal: null })));
  });
});

/** SIGTERM or a restart never loses what was stored: bytes in flight are kept, finished uploads stay. On every storage kind. */
describe.each(STORE_KINDS)('[%s] graceful shutdown keeps the uploads', (kind) => {
  const fileScope = new Scope();
  const testScope = new Scope();
  let file: TestFile;
  let dir: string;

  beforeAll(async () => {
    dir = await fileScope.tempDir();
    file = await makeFile(dir, 'source-4mib.bin', 4 * MiB, 'shutdown-4');
  });
  afterEach(() => testScope.dispose());
  afterAll(() => fileScope.dispose());

  it('answers the PATCH in flight with what arrived, exits 0, and the upload resumes after a restart', async () => {
    const store = await createTestStore(kind, testScope);
    const first = await testScope.server(store.startOptions({ SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_S}s` }));
    const url = await createUpload(first.endpoint, { length: file.size, metadata: { filename: 'shutdown.bin' } });
    const data = await fsp.readFile(file.path);

    // A slow PATCH: 1 MiB at once, then 64 KiB every 100 ms (it would take ~5 s to finish).
    const request = rawPatch(url, 0, { 'Content-Length': file.size });
    expect(await request.write(data.subarray(0, MiB))).toBe(true);
    // On S3 the bytes wait in a part buffer under STORAGE_DIR: SIGTERM must send them before the process exits.
    await waitForStoredBytes(() => store.bytesArrived(uploadIdOf(url)), MiB);
    const trickle = request.writePaced(data.subarray(MiB), 64 * KiB, 100);

    first.kill('SIGTERM');
    const response = await withTimeout(request.response, (SHUTDOWN_TIMEOUT_S + 5) * 1000, 'the PATCH in flight to be answered');
    await trickle;
    request.destroy();
    const exit = await withTimeout(first.exited, (SHUTDOWN_TIMEOUT_S + 5) * 1000, 'the server to exit after SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });

    // The cut PATCH succeeded with the bytes that had arrived.
    expect(response.status).toBe(204);
    const answeredOffset = Number(response.headers['upload-offset']);
    expect(answeredOffset).toBeGreaterThanOrEqual(MiB);
    expect(answeredOffset).toBeLessThanOrEqual(request.bytesWritten);
    expect(answeredOffset).toBeLessThan(file.size);
    expect(first.logs().some((line) => line.msg === 'shutting down')).toBe(true);

    // Restart on the same storage: the bytes are there and the upload resumes.
    const second = await testScope.server(store.startOptions({ SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_S}s` }));
    const resumedUrl = new URL(new URL(url).pathname, second.url).toString();
    const state = await head(resumedUrl);
    expect(state.status).toBe(200);
    expect(state.offset).toBe(answeredOffset);
    expect(await store.storedBytes(uploadIdOf(url))).toBe(answeredOffset);

    const chunks: { size: number; accepted: number }[] = [];
    const resumed = startClientUpload(fs.createReadStream(file.path), {
      uploadUrl: resumedUrl,
      chunkSize: MiB,
      onChunkComplete: (size, accepted) => chunks.push({ size, accepted }),
    });
    expect(await resumed.done).toBe(resumedUrl);
    expect((chunks[0]?.accepted ?? 0) - (chunks[0]?.size ?? 0)).toBe(answeredOffset);
    const got = await download(resumedUrl);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(file.sha256);
  });

  it('lets a retrying tus-js-client ride through a restart on the same address (a rolling deploy)', async () => {
    const big = await makeFile(dir, 'source-16mib.bin', 16 * MiB, 'shutdown-rolling');
    const store = await createTestStore(kind, testScope);
    const env = { PORT: String(await findFreePort()), SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_S}s` };
    const first = await testScope.server(store.startOptions(env));

    let restarted: Promise<ServerProcess> | undefined;
    const run = startClientUpload(
      fs.createReadStream(big.path),
      {
        endpoint: first.endpoint,
        chunkSize: 4 * MiB,
        // ~8 MiB/s, so SIGTERM lands inside a PATCH.
        httpStack: slowHttpStack(8 * MiB),
        // ~15 s of retries in all: far more than a restart takes.
        retryDelays: [200, 400, 800, 1000, 1000, 1000, 2000, 2000, 3000, 3000],
        onProgress: (bytesSent) => {
          if (restarted || bytesSent < 0.4 * big.size) return;
          restarted = (async () => {
            first.kill('SIGTERM');
            await withTimeout(first.exited, (SHUTDOWN_TIMEOUT_S + 5) * 1000, 'the first server to exit');
            return testScope.server(store.startOptions(env));
          })();
          restarted.catch(() => undefined);
        },
      },
      120_000,
    );
    const url = await run.done;
    expect(restarted).toBeDefined();
    const second = await (restarted as Promise<ServerProcess>);

    expect(first.exitInfo).toEqual({ code: 0, signal: null });
    expect(second.url).toBe(first.url);
    // The second process continued the same upload: HEAD then PATCHes, no new creation.
    const id = new URL(url).pathname.split('/').pop();
    const secondRequests = second.logs().filter((line) => line.uploadId === id);
    expect(secondRequests.some((line) => line.method === 'HEAD' && line.status === 200)).toBe(true);
    expect(secondRequests.some((line) => line.method === 'PATCH' && line.status === 204)).toBe(true);
    expect(second.logs().some((line) => line.method === 'POST')).toBe(false);
    const got = await download(url);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(big.sha256);
  });

  it('keeps a finished upload readable after a restart', async () => {
    const store = await createTestStore(kind, testScope);
    const first = await testScope.server(store.startOptions());
    const run = startClientUpload(fs.createReadStream(file.path), { endpoint: first.endpoint, chunkSize: MiB });
    const url = await run.done;
    expect(await first.stop()).toEqual({ code: 0, signal: null });

    const second = await testScope.server(store.startOptions());
    const again = new URL(new URL(url).pathname, second.url).toString();
    expect((await head(again)).offset).toBe(file.size);
    expect((await download(again)).sha256).toBe(file.sha256);
  });
});

type PausedDownload = {
  socket: net.Socket;
  /** Everything read so far: the raw HTTP response(s). */
  received(): Buffer;
  receivedBytes(): number;
  /** Settles when the server ends or resets the connection. */
  closed: Promise<void>;
};

/**
 * GETs `url` over a raw keep-alive connection, reads the first piece of the response and
 * stops reading (socket paused): the response stays in flight until the caller resumes.
 */
async function openPausedDownload(url: URL): Promise<PausedDownload> {
  const socket = net.connect(Number(url.port), '127.0.0.1');
  const chunks: Buffer[] = [];
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    bytes += chunk.byteLength;
    if (chunks.length === 1) socket.pause();
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 10_000, 'connecting');
  socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
  await pollUntil(() => (bytes > 0 ? true : undefined), 'the download to start');
  return { socket, received: () => Buffer.concat(chunks), receivedBytes: () => bytes, closed };
}
