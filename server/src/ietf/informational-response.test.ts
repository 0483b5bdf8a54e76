import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from '../testing/create-test-app.js';
import { buildRequest, rawRequest, waitFor } from '../testing/http-test-helpers.js';

/**
 * The 104 (Upload Resumption Supported) on a real socket, read by a raw client that knows
 * informational responses: sent as soon as the upload exists, before the final response,
 * with Location and the interop version; never to an HTTP/1.0 client. And what it is for:
 * a creation cut off mid-body is resumed from the HEAD offset at that Location.
 */

type Parsed = { status: number; headers: Record<string, string> };

/** Every response head in `data`, in order (bodies skipped by Content-Length). */
function responseHeads(data: Buffer): Parsed[] {
  const heads: Parsed[] = [];
  let rest = data;
  for (let i = 0; i < 10; i += 1) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const [statusLine = '', ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1];
    // What follows a final response without Content-Length (a chunked terminator) is no response.
    if (status === undefined) break;
    heads.push({ status: Number(status), headers });
    rest = rest.subarray(end + 4 + Number(headers['content-length'] ?? 0));
  }
  return heads;
}

/** Opens a connection, lets the test write, and collects what comes back until `done(data)` or the timeout. */
function connect(port: number) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
  });
  socket.on('error', () => undefined);
  const until = async (done: (heads: Parsed[]) => boolean, timeoutMs = 5_000) => {
    await waitFor(() => done(responseHeads(data)), { timeoutMs });
    return responseHeads(data);
  };
  return { socket, until };
}

describe('104 Upload Resumption Supported', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => {
    server = await startTestServer({ MAX_UPLOAD_SIZE: '1MiB' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it.each([3, 5, 6, 7, 8])('version %i: the 104 with Location comes before the 201', async (version) => {
    const complete: Record<string, string> = version === 3 ? { 'Upload-Incomplete': '?0' } : { 'Upload-Complete': '?1' };
    const { socket, until } = connect(server.running.port);
    socket.write(buildRequest('POST', '/files', { 'Upload-Draft-Interop-Version': String(version), ...complete, 'Content-Length': '5' }, 'hello'));
    const heads = await until((found) => found.some((head) => head.status >= 200));
    socket.destroy();
    expect(heads.map((head) => head.status)).toEqual([104, 201]);
    const [informational, final] = heads as [Parsed, Parsed];
    expect(informational.headers['upload-draft-interop-version']).toBe(String(version));
    expect(informational.headers.location).toMatch(/^http:\/\/127\.0\.0\.1\/files\/[0-9a-f]{32}$/);
    expect(final.headers.location).toBe(informational.headers.location);
    if (version >= 6) expect(informational.headers['upload-limit']).toMatch(/^max-size=1048576, (expires|max-age)=\d+$/);
  });

  it('sends no 104 to an HTTP/1.0 client, nor to a tus request', async () => {
    const old = await rawRequest(server.running.port, 'POST /files HTTP/1.0\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 6\r\nUpload-Complete: ?1\r\nContent-Length: 2\r\n\r\nhi');
    expect(old.status).toBe(201);
    const tus = await rawRequest(server.running.port, buildRequest('POST', '/files', { 'Tus-Resumable': '1.0.0', 'Upload-Length': '2' }));
    expect(tus.status).toBe(201);
  });

  it('a creation cut off mid-body is resumed at the Location of the 104, from the HEAD offset', async () => {
    const content = Buffer.alloc(200_000, 7);
    const { socket, until } = connect(server.running.port);
    socket.write(buildRequest('POST', '/files', { 'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?1', 'Content-Length': String(content.length) }, content.subarray(0, 120_000)));
    const [informational] = await until((found) => found.some((head) => head.status === 104));
    const location = new URL(informational?.headers.location ?? '');
    // The first bytes reach the store, then the connection drops.
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.destroy();

    let offset = 0;
    await waitFor(async () => {
      const head = await rawRequest(server.running.port, buildRequest('HEAD', location.pathname, { 'Upload-Draft-Interop-Version': '6' }));
      offset = Number(head.headers['upload-offset']);
      return head.status === 204 && head.headers['upload-complete'] === '?0' && offset === 120_000;
    });
    const rest = await rawRequest(
      server.running.port,
      buildRequest(
        'PATCH',
        location.pathname,
        { 'Upload-Draft-Interop-Version': '6', 'Upload-Complete': '?1', 'Upload-Offset': String(offset), 'Content-Type': 'application/partial-upload', 'Content-Length': String(content.length - offset) },
        content.subarray(offset),
      ),
    );
    expect(rest.status).toBe(204);
    expect(rest.headers['upload-complete']).toBe('?1');
    expect(rest.headers['upload-offset']).toBe(String(content.length));
    const download = await fetch(`http://127.0.0.1:${server.running.port}${location.pathname}`);
    expect(Buffer.from(await download.arrayBuffer()).equals(content)).toBe(true);
  });

  it('a new request for an upload whose body stalls makes it let go, keeping what arrived', async () => {
    const { socket, until } = connect(server.running.port);
    socket.write(buildRequest('POST', '/files', { 'Upload-Draft-Interop-Version': '8', 'Upload-Complete': '?0', 'Content-Length': '1000' }, Buffer.alloc(400, 1)));
    const [informational] = await until((found) => found.some((head) => head.status === 104));
    const path = new URL(informational?.headers.location ?? '').pathname;
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The body is still open (600 bytes to come): the HEAD asks the creation to let go, and learns the 400.
    const head = await rawRequest(server.running.port, buildRequest('HEAD', path, { 'Upload-Draft-Interop-Version': '8' }));
    expect(head.status).toBe(204);
    expect(head.headers['upload-offset']).toBe('400');
    const heads = await until((found) => found.some((one) => one.status >= 200));
    socket.destroy();
    expect(heads.at(-1)?.status).toBe(201);
    expect(heads.at(-1)?.headers['upload-offset']).toBe('400');
  });
});
