import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HookHttpError, HookTimeoutError, postHook, type HookPayload, type HttpHookConfig } from './http-hook-client.js';
import { verifyHookSignature } from './signature.js';
import type { HookEvent } from './types.js';

const SECRET = 'client-test-secret-0123456789';

type Received = { method: string; url: string; headers: http.IncomingHttpHeaders; body: string };
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, received: Received) => void;

/** One local HTTP server on 127.0.0.1 for the whole file; each test sets its handler. */
let server: http.Server;
let base: string;
let handler: Handler = (_req, res) => res.end('{}');
const received: Received[] = [];
const endless = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(entry);
      handler(req, res, entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  for (const timer of endless) clearInterval(timer);
  endless.clear();
  received.length = 0;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
});

const config = (timeoutMs = 2_000, path = '/hook'): HttpHookConfig => ({ url: `${base}${path}`, secret: SECRET, timeoutMs });

const event: HookEvent = {
  type: 'post-finish',
  upload: { id: '0123456789abcdef0123456789abcdef', size: 11, offset: 11, metadata: { filename: 'hello.txt' }, createdAt: '2026-01-01T00:00:00.000Z' },
  request: { method: 'PATCH', uri: '/files/0123456789abcdef0123456789abcdef', remoteAddress: '127.0.0.1', subject: null, headers: { 'tus-resumable': '1.0.0' } },
};

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('postHook', () => {
  it('POSTs the event as signed JSON with the hook headers', async () => {
    handler = (_req, res) => res.end('{}');
    const reply = await postHook(config(), event, { id: 'delivery-42', attempt: 3 });
    expect(reply).toEqual({ status: 200, json: {} });

    expect(received).toHaveLength(1);
    const { method, url, headers, body } = received[0]!;
    expect(method).toBe('POST');
    expect(url).toBe('/hook');
    expect(headers['content-type']).toBe('application/json');
    expect(headers['hook-type']).toBe('post-finish');
    expect(headers['hook-delivery-id']).toBe('delivery-42');
    expect(headers['hook-timestamp']).toMatch(/^\d+$/);
    expect(Math.abs(Number(headers['hook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    expect(verifyHookSignature(SECRET, { body, signature: headers['hook-signature'] as string, timestamp: headers['hook-timestamp'] as string })).toBe(true);
    expect(verifyHookSignature('some-other-secret-123', { body, signature: headers['hook-signature'] as string, timestamp: headers['hook-timestamp'] as string })).toBe(false);

    const payload = JSON.parse(body) as HookPayload;
    expect(payload).toEqual({ ...event, deliveryId: 'delivery-42', attempt: 3, sentAt: expect.any(String) });
    expect(Number.isNaN(Date.parse(payload.sentAt))).toBe(false);
  });

  it('makes up a delivery id and attempt 1 when none is given (blocking hooks)', async () => {
    handler = (_req, res) => res.end();
    await postHook(config(), event);
    await postHook(config(), event);
    const payloads = received.map((r) => JSON.parse(r.body) as HookPayload);
    expect(payloads.map((p) => p.attempt)).toEqual([1, 1]);
    expect(payloads[0]!.deliveryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(payloads[0]!.deliveryId).not.toBe(payloads[1]!.deliveryId);
    expect(received[0]!.headers['hook-delivery-id']).toBe(payloads[0]!.deliveryId);
  });

  it('parses a JSON reply, and reads an empty or non-JSON 2xx reply as null', async () => {
    handler = (_req, res) => res.end(JSON.stringify({ stopUpload: true }));
    expect(await postHook(config(), event)).toEqual({ status: 200, json: { stopUpload: true } });
    handler = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    expect(await postHook(config(), event)).toEqual({ status: 204, json: null });
    handler = (_req, res) => res.end('OK, thanks');
    expect(await postHook(config(), event)).toEqual({ status: 200, json: null });
    handler = (_req, res) => res.end('   ');
    expect(await postHook(config(), event)).toEqual({ status: 200, json: null });
  });

  it('throws HookHttpError with the status and body for a 4xx or 5xx reply', async () => {
    handler = (_req, res) => {
      res.writeHead(403, { 'Content-Type': 'application/json' });
      res.end('{"message":"quota exceeded"}');
    };
    const forbidden = await rejectionOf(postHook(config(), event));
    expect(forbidden).toBeInstanceOf(HookHttpError);
    expect(forbidden).toMatchObject({ name: 'HookHttpError', status: 403, responseBody: '{"message":"quota exceeded"}', message: 'hook endpoint answered 403' });

    handler = (_req, res) => {
      res.writeHead(503);
      res.end('down for maintenance');
    };
    const down = await rejectionOf(postHook(config(), event));
    expect(down).toBeInstanceOf(HookHttpError);
    expect(down).toMatchObject({ status: 503, responseBody: 'down for maintenance' });
    // The message never carries the receiver's body (it may reach logs next to client data).
    expect((down as Error).message).not.toContain('maintenance');
  });

  it('throws HookTimeoutError when the receiver does not answer in time', async () => {
    handler = () => undefined; // never answers
    const started = Date.now();
    const error = await rejectionOf(postHook(config(300), event));
    expect(error).toBeInstanceOf(HookTimeoutError);
    expect(error).toMatchObject({ name: 'HookTimeoutError', message: 'hook endpoint did not answer within 300 ms' });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('throws HookTimeoutError when the receiver sends headers and then stalls the body', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '100' });
      res.write('{"stopUpload":');
    };
    const error = await rejectionOf(postHook(config(300), event));
    expect(error).toBeInstanceOf(HookTimeoutError);
  });

  it('reads at most 64 KiB of a reply, even from a receiver that never stops sending', async () => {
    handler = (_req, res) => {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      const piece = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const timer = setInterval(() => {
        // Bounded: at most 256 MiB, and only while the client still reads.
        if (res.destroyed || sent > 256 * 1024 * 1024) {
          clearInterval(timer);
          endless.delete(timer);
          res.destroy();
          return;
        }
        res.write(piece);
        sent += piece.length;
      }, 1);
      endless.add(timer);
    };
    const error = await rejectionOf(postHook(config(5_000), event));
    expect(error).toBeInstanceOf(HookHttpError);
    expect((error as HookHttpError).responseBody.length).toBeLessThanOrEqual(64 * 1024);
    expect((error as HookHttpError).responseBody.length).toBeGreaterThan(0);
  });

  it('does not follow redirects', async () => {
    handler = (req, res) => {
      if (req.url === '/hook') {
        res.writeHead(307, { Location: '/elsewhere' });
        res.end();
      } else res.end('{}');
    };
    const error = await rejectionOf(postHook(config(), event));
    expect(error).not.toBeInstanceOf(HookHttpError);
    expect(error).not.toBeInstanceOf(HookTimeoutError);
    expect(received.map((r) => r.url)).toEqual(['/hook']);
  });

  it('rejects with a network error (neither class) when nothing listens', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await rejectionOf(postHook({ url: `http://127.0.0.1:${port}/hook`, secret: SECRET, timeoutMs: 2_000 }, event));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(HookHttpError);
    expect(error).not.toBeInstanceOf(HookTimeoutError);
  });
});
