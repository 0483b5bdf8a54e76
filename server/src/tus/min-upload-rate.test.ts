import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer } from '../testing/create-test-app.js';
import { TUS } from '../testing/http-test-helpers.js';

/**
 * A trickling client (one byte at a time, each before the idle timeout) through a real socket:
 * with MIN_UPLOAD_RATE its PATCH is ended after a window, the bytes it sent are stored, the
 * lock is free for the next PATCH, and the answer says why.
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

type Answer = { status: number; headers: http.IncomingHttpHeaders; bytesSent: number; elapsedMs: number };

/** A PATCH declaring `length` bytes that sends one byte every `everyMs`; resolves with the answer, or undefined after `giveUpMs`. */
function tricklePatch(url: string, length: number, everyMs: number, giveUpMs: number): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    const started = Date.now();
    let sent = 0;
    const req = http.request(url, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Content-Length': String(length) },
    });
    const timer = setInterval(() => {
      if (sent < length) {
        req.write('x');
        sent += 1;
      }
    }, everyMs);
    const giveUp = setTimeout(() => {
      clearInterval(timer);
      req.destroy();
      resolve(undefined);
    }, giveUpMs);
    req.on('response', (res) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, bytesSent: sent, elapsedMs: Date.now() - started });
      req.destroy();
    });
    req.on('error', () => undefined);
  });
}

async function create(url: string, length: number): Promise<string> {
  const res = await fetch(`${url}/files/`, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(length) }, signal: AbortSignal.timeout(5_000) });
  expect(res.status).toBe(201);
  return new URL(res.headers.get('location')!, url).pathname;
}

describe('MIN_UPLOAD_RATE on a real socket', () => {
  it('ends a trickling PATCH after one window: 204 with the stored offset and Upload-Cut-Reason; the upload resumes at once', async () => {
    const server = await startTestServer({ MIN_UPLOAD_RATE: '1KiB', MIN_UPLOAD_RATE_WINDOW: '400ms' });
    servers.push(server);
    const url = server.running.url;
    const path = await create(url, 1000);

    const answer = await tricklePatch(`${url}${path}`, 1000, 40, 5_000);
    expect(answer).toBeDefined();
    expect(answer!.status).toBe(204);
    expect(answer!.elapsedMs).toBeLessThan(2_000);
    const offset = Number(answer!.headers['upload-offset']);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(answer!.bytesSent);
    expect(answer!.headers['upload-cut-reason']).toMatch(/^too-slow: fewer than 1024 bytes\/s arrived over 0.4 s \(MIN_UPLOAD_RATE\)/);
    expect(answer!.headers.connection).toBe('close');

    // The lock is free: HEAD agrees, and the rest goes up in one PATCH.
    const head = await fetch(`${url}${path}`, { method: 'HEAD', headers: TUS, signal: AbortSignal.timeout(5_000) });
    expect(Number(head.headers.get('upload-offset'))).toBe(offset);
    const rest = await fetch(`${url}${path}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
      body: Buffer.alloc(1000 - offset, 'y'),
      signal: AbortSignal.timeout(5_000),
    });
    expect(rest.status).toBe(204);
    expect(rest.headers.get('upload-offset')).toBe('1000');
  });

  it('without a minimum rate (0) the same trickle keeps its PATCH, and the lock, open', async () => {
    const server = await startTestServer({ MIN_UPLOAD_RATE: '0' });
    servers.push(server);
    const url = server.running.url;
    const path = await create(url, 1000);
    expect(await tricklePatch(`${url}${path}`, 1000, 40, 1_500)).toBeUndefined();
  });
});
