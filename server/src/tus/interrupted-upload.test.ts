import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer } from '../testing/create-test-app.js';
import { buildRequest, openRawConnection, rawRequest, TUS, waitFor, OFFSET_STREAM } from '../testing/http-test-helpers.js';

/**
 * What happens to a PATCH that does not complete, over a real socket through Hono's Node
 * adapter: the client disconnects, goes quiet, or the server shuts down. Each time the
 * bytes that arrived are kept, the lock is released, and the upload resumes from there.
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];

async function start(env: Record<string, string> = {}): Promise<Server> {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

const content = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + 3) % 251));

async function create(server: Server, length: number): Promise<string> {
  const res = await rawRequest(server.running.port, buildRequest('POST', '/files', { ...TUS, 'Upload-Length': String(length), 'Content-Length': '0' }));
  expect(res.status).toBe(201);
  return new URL(res.headers.location!).pathname;
}

async function headOffset(server: Server, uploadPath: string): Promise<number> {
  const res = await rawRequest(server.running.port, buildRequest('HEAD', uploadPath, TUS), { head: true });
  expect(res.status).toBe(200);
  return Number(res.headers['upload-offset']);
}

function patchHead(uploadPath: string, offset: number, length: number, connection = 'close'): Buffer {
  return buildRequest('PATCH', uploadPath, {
    ...TUS,
    'Upload-Offset': String(offset),
    'Content-Type': OFFSET_STREAM,
    'Content-Length': String(length),
    Connection: connection,
  });
}

async function patch(server: Server, uploadPath: string, offset: number, body: Buffer) {
  return rawRequest(server.running.port, Buffer.concat([patchHead(uploadPath, offset, body.length), body]), { timeoutMs: 10_000 });
}

async function download(server: Server, uploadPath: string): Promise<Buffer> {
  const res = await fetch(`${server.running.url}${uploadPath}`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe('a PATCH whose client disconnects', () => {
  it('keeps the bytes that arrived, releases the lock, and resumes from there', async () => {
    const server = await start();
    const total = 200_000;
    const data = content(total);
    const uploadPath = await create(server, total);

    const { socket, response } = openRawConnection(server.running.port, { timeoutMs: 10_000 });
    response.catch(() => undefined);
    socket.write(patchHead(uploadPath, 0, total));
    const sent = 70_000;
    socket.write(data.subarray(0, sent));
    // Let the bytes reach the server before the connection goes away.
    await waitFor(() => server.lifecycle.activeUploads === 1, { timeoutMs: 3_000 });
    await sleep(300);
    socket.destroy();

    let offset = 0;
    await waitFor(
      async () => {
        offset = await headOffset(server, uploadPath);
        return offset > 0;
      },
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    expect(offset).toBe(sent);
    await waitFor(() => server.lifecycle.activeUploads === 0, { timeoutMs: 3_000 });

    // The lock is free: a new PATCH from that offset is accepted and finishes the upload.
    const resumed = await patch(server, uploadPath, offset, data.subarray(offset));
    expect(resumed.status).toBe(204);
    expect(resumed.headers['upload-offset']).toBe(String(total));
    expect((await download(server, uploadPath)).equals(data)).toBe(true);
  });

  it('a disconnect before any body byte stores nothing and leaves the upload usable', async () => {
    const server = await start();
    const uploadPath = await create(server, 10);
    const { socket, response } = openRawConnection(server.running.port, { timeoutMs: 10_000 });
    response.catch(() => undefined);
    socket.write(patchHead(uploadPath, 0, 10));
    await waitFor(() => server.lifecycle.activeUploads === 1, { timeoutMs: 3_000 });
    socket.destroy();
    await waitFor(() => server.lifecycle.activeUploads === 0, { timeoutMs: 3_000 });
    expect(await headOffset(server, uploadPath)).toBe(0);
    const res = await patch(server, uploadPath, 0, Buffer.from('0123456789'));
    expect(res.status).toBe(204);
    expect((await download(server, uploadPath)).toString()).toBe('0123456789');
  });
});

describe('a PATCH that goes quiet', () => {
  it('is ended after IDLE_TIMEOUT with what arrived, and the connection is closed', async () => {
    const server = await start({ IDLE_TIMEOUT: '400ms' });
    const data = content(1_000);
    const uploadPath = await create(server, data.length);

    const { socket, response } = openRawConnection(server.running.port, { timeoutMs: 5_000 });
    socket.write(patchHead(uploadPath, 0, data.length, 'keep-alive'));
    socket.write(data.subarray(0, 300));
    const started = Date.now();
    const res = await response;
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(res.status).toBe(204);
    expect(res.headers['upload-offset']).toBe('300');
    expect(res.headers.connection).toBe('close');

    expect(await headOffset(server, uploadPath)).toBe(300);
    const resumed = await patch(server, uploadPath, 300, data.subarray(300));
    expect(resumed.status).toBe(204);
    expect(resumed.headers['upload-offset']).toBe('1000');
    expect((await download(server, uploadPath)).equals(data)).toBe(true);
  });

  it('a slow but steady body is not cut', async () => {
    const server = await start({ IDLE_TIMEOUT: '600ms' });
    const data = content(10);
    const uploadPath = await create(server, data.length);
    const { socket, response } = openRawConnection(server.running.port, { timeoutMs: 10_000 });
    socket.write(patchHead(uploadPath, 0, data.length, 'keep-alive'));
    for (let i = 0; i < data.length; i += 1) {
      socket.write(data.subarray(i, i + 1));
      await sleep(100);
    }
    const res = await response;
    expect(res.status).toBe(204);
    expect(res.headers['upload-offset']).toBe('10');
    expect(res.headers.connection).not.toBe('close');
  });
});

describe('a PATCH in flight at shutdown', () => {
  it('is ended with what arrived, answered 204, and persisted', async () => {
    const server = await start();
    const data = content(5_000);
    const uploadPath = await create(server, data.length);
    const id = uploadPath.split('/').pop()!;

    const { socket, response } = openRawConnection(server.running.port, { timeoutMs: 10_000 });
    socket.write(patchHead(uploadPath, 0, data.length, 'keep-alive'));
    socket.write(data.subarray(0, 1_234));
    await waitFor(() => server.lifecycle.activeUploads === 1, { timeoutMs: 3_000 });
    await sleep(200);

    const stopping = server.running.shutdown();
    const res = await response;
    await stopping;
    expect(res.status).toBe(204);
    expect(res.headers['upload-offset']).toBe('1234');
    expect(res.headers.connection).toBe('close');
    const stored = await fs.readFile(path.join(server.storageDir, id));
    expect(stored.equals(data.subarray(0, 1_234))).toBe(true);
    expect(server.lifecycle.isDraining).toBe(true);
  });
});
