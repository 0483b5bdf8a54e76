import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createTestApp, startTestServer } from '../testing/create-test-app.js';
import { buildRequest, createFinishedUpload, openRawConnection, rawRequest, TUS } from '../testing/http-test-helpers.js';
import { startServer } from './serve.js';

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

/** A GET over a keep-alive agent; resolves with status and body. */
function get(url: string, agent: http.Agent): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('startServer', () => {
  it('listens on 127.0.0.1 on the port the OS picked', async () => {
    const server = await start();
    expect(server.running.port).toBeGreaterThan(0);
    expect(server.running.url).toBe(`http://127.0.0.1:${server.running.port}`);
    const address = server.running.server.address();
    expect(address).toMatchObject({ address: '127.0.0.1', port: server.running.port });
    expect(server.running.server.requestTimeout).toBe(0);
    const res = await fetch(`${server.running.url}/healthz`);
    expect(res.status).toBe(200);
  });

  it('fails to start on a port in use', async () => {
    const first = await start();
    const second = await createTestApp({ PORT: String(first.running.port) });
    try {
      await expect(startServer(second.config, second, pino({ level: 'silent' }))).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await second.cleanup();
    }
  });
});

describe('MAX_CONNECTIONS', () => {
  it('closes connections past the limit at once; those within it are served', async () => {
    const server = await start({ MAX_CONNECTIONS: '2' });
    expect(server.running.server.maxConnections).toBe(2);
    const open = [openRawConnection(server.running.port), openRawConnection(server.running.port)];
    for (const { response } of open) response.catch(() => undefined);
    // Both are accepted (the server counts them) before the third knocks.
    for (let i = 0; i < 100; i += 1) {
      const count = await new Promise<number>((resolve) => server.running.server.getConnections((_error, n) => resolve(n)));
      if (count >= 2) break;
      await sleep(10);
    }
    const third = await rawRequest(server.running.port, buildRequest('GET', '/healthz', { Host: 'localhost' }), { timeoutMs: 2_000 }).then(
      (res) => res.status,
      () => 0,
    );
    expect(third).toBe(0);
    for (const { socket } of open) socket.destroy();
    await sleep(50);
    const later = await rawRequest(server.running.port, buildRequest('GET', '/healthz', { Host: 'localhost', Connection: 'close' }), { timeoutMs: 2_000 });
    expect(later.status).toBe(200);
  });

  it('0 leaves Node without a limit', async () => {
    const server = await start({ MAX_CONNECTIONS: '0' });
    expect(server.running.server.maxConnections).not.toBe(0);
    expect((await fetch(`${server.running.url}/healthz`)).status).toBe(200);
  });
});

describe('shutdown', () => {
  it('ends promptly even when a keep-alive response finishes just as it starts', async () => {
    const server = await start({ SHUTDOWN_TIMEOUT: '30s' });
    const { path } = await createFinishedUpload(server.app, 'some bytes');
    const agent = new http.Agent({ keepAlive: true });
    try {
      const res = await get(`${server.running.url}${path}`, agent);
      expect(res.status).toBe(200);
      expect(res.body).toBe('some bytes');
      const started = Date.now();
      await server.running.shutdown();
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      agent.destroy();
    }
  });

  it('answers 503 with Connection: close to a request on a kept-alive connection while draining', async () => {
    const server = await start({ SHUTDOWN_TIMEOUT: '2s' });
    // Keep a connection busy with an unfinished request so the server stays up.
    const busy = openRawConnection(server.running.port, { timeoutMs: 5_000 });
    busy.response.catch(() => undefined);
    busy.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const second = openRawConnection(server.running.port, { timeoutMs: 5_000 });
    second.socket.write(buildRequest('GET', '/healthz', { Connection: 'keep-alive' }));
    const first = await second.response;
    expect(first.status).toBe(200);

    server.lifecycle.beginShutdown();
    const res = await rawRequest(server.running.port, buildRequest('POST', '/files', { ...TUS, 'Upload-Length': '1', 'Content-Length': '0' }));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.headers.connection).toBe('close');
    expect(res.body.startsWith('ERR_SERVER_SHUTTING_DOWN: ')).toBe(true);
    busy.socket.destroy();
  });

  it('closes connections that are still busy at SHUTDOWN_TIMEOUT', async () => {
    const server = await start({ SHUTDOWN_TIMEOUT: '500ms' });
    const stuck = openRawConnection(server.running.port, { timeoutMs: 10_000 });
    stuck.response.catch(() => undefined);
    // Headers never finish: the connection is neither idle nor done.
    stuck.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await sleep(100);
    const closed = new Promise<void>((resolve) => stuck.socket.once('close', () => resolve()));
    const started = Date.now();
    await server.running.shutdown();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(400);
    expect(elapsed).toBeLessThan(3_000);
    await closed;
  });

  it('is idempotent', async () => {
    const server = await start();
    const a = server.running.shutdown();
    const b = server.running.shutdown();
    expect(a).toBe(b);
    await a;
    expect(server.lifecycle.isDraining).toBe(true);
  });
});
