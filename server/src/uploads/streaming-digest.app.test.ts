import { createCipheriv, createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { detectType } from '../processing/processors/detect-type.js';
import { sha256 } from '../processing/processors/sha256.js';
import type { Processor, ProcessorInput } from '../processing/processors/types.js';
import { startTestServer } from '../testing/create-test-app.js';
import { buildRequest, OFFSET_STREAM, openRawConnection, rawRequest, TUS, waitFor } from '../testing/http-test-helpers.js';

/**
 * The streaming digest through the whole app on a real socket: an upload whose bytes
 * arrive in one uninterrupted sequence is hashed as it streams in and processing reads
 * nothing; a cut, resumed or out-of-order upload falls back to reading the file. Either
 * way the results are those of a full read.
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

type Seen = { streamed: boolean; reads: number; result: unknown; fullRead: unknown };

/**
 * Wraps a processor: runs it on processing's own input (counting the reads it makes), then
 * again with no streamed digest, which is what a full read gives; records both per upload.
 */
function observed(processor: Processor, seen: Map<string, Seen>): Processor {
  return {
    name: processor.name,
    async run(input: ProcessorInput) {
      let reads = 0;
      const outcome = await processor.run({ ...input, read: (range) => ((reads += 1), input.read(range)) });
      const full = await processor.run({ ...input, streamed: undefined });
      seen.set(`${processor.name}:${input.id}`, { streamed: input.streamed !== undefined, reads, result: outcome.result, fullRead: full.result });
      return outcome;
    },
  };
}

async function start() {
  const seen = new Map<string, Seen>();
  const server = await startTestServer({}, { processors: [observed(sha256, seen), observed(detectType([]), seen)] });
  servers.push(server);
  /** What both processors saw for `id`, once processing ran. */
  const processed = async (id: string) => {
    await waitFor(() => seen.has(`type:${id}`), { timeoutMs: 10_000 });
    return { sha: seen.get(`sha256:${id}`)!, type: seen.get(`type:${id}`)! };
  };
  return { server, processed };
}

/** A GIF header, then deterministic pseudo-random bytes (AES-CTR keystream). */
function gif(length: number): Buffer {
  const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16));
  const header = Buffer.from('GIF89a', 'latin1');
  return Buffer.concat([header, cipher.update(Buffer.alloc(length - header.length)), cipher.final()]);
}
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function create(server: Server, length: number, body?: Buffer): Promise<{ id: string; path: string; offset: string | undefined }> {
  const headers = { ...TUS, 'Upload-Length': String(length), ...(body ? { 'Content-Type': OFFSET_STREAM } : {}), 'Content-Length': String(body?.length ?? 0) };
  const res = await rawRequest(server.running.port, buildRequest('POST', '/files', headers, body ?? ''), { timeoutMs: 10_000 });
  expect(res.status).toBe(201);
  const path = new URL(res.headers.location!).pathname;
  return { id: path.split('/').pop()!, path, offset: res.headers['upload-offset'] };
}

function patchHead(uploadPath: string, offset: number, length: number): Buffer {
  return buildRequest('PATCH', uploadPath, { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': OFFSET_STREAM, 'Content-Length': String(length), Connection: 'close' });
}

const patch = (server: Server, uploadPath: string, offset: number, body: Buffer) =>
  rawRequest(server.running.port, Buffer.concat([patchHead(uploadPath, offset, body.length), body]), { timeoutMs: 10_000 });

/** Both processors used the streamed digest, read nothing, and agree with a full read. */
function expectStreamed(seen: { sha: Seen; type: Seen }, data: Buffer): void {
  expect(seen.sha).toMatchObject({ streamed: true, reads: 0, result: { sha256: sha(data), bytes: data.length } });
  expect(seen.sha.result).toEqual(seen.sha.fullRead);
  expect(seen.type).toMatchObject({ streamed: true, reads: 0, result: { detected: 'image/gif' } });
  expect(seen.type.result).toEqual(seen.type.fullRead);
}

/** Processing read the file (no digest was handed over) and still got the right answers. */
function expectFallback(seen: { sha: Seen; type: Seen }, data: Buffer): void {
  expect(seen.sha).toMatchObject({ streamed: false, result: { sha256: sha(data), bytes: data.length } });
  expect(seen.sha.reads).toBeGreaterThan(0);
  expect(seen.type).toMatchObject({ streamed: false, result: { detected: 'image/gif' } });
  expect(seen.type.reads).toBeGreaterThan(0);
}

describe('streaming digest through the app', () => {
  it('an upload received in one PATCH is hashed as it arrives: processing reads nothing, results as a full read', async () => {
    const { server, processed } = await start();
    const data = gif(300_000);
    const upload = await create(server, data.length);
    const res = await patch(server, upload.path, 0, data);
    expect(res.status).toBe(204);
    expectStreamed(await processed(upload.id), data);
  });

  it('creation-with-upload: the bytes of the POST are hashed too', async () => {
    const { server, processed } = await start();
    const data = gif(16 * 1024);
    const upload = await create(server, data.length, data);
    expect(upload.offset).toBe(String(data.length));
    expectStreamed(await processed(upload.id), data);
  });

  it('consecutive PATCHes in order continue one digest (after a partial creation-with-upload)', async () => {
    const { server, processed } = await start();
    const data = gif(250_000);
    const upload = await create(server, data.length, data.subarray(0, 1_000));
    expect(upload.offset).toBe('1000');
    for (const [from, to] of [
      [1_000, 3_000],
      [3_000, 100_000],
      [100_000, data.length],
    ] as const) {
      const res = await patch(server, upload.path, from, data.subarray(from, to));
      expect(res.status).toBe(204);
      expect(res.headers['upload-offset']).toBe(String(to));
    }
    expectStreamed(await processed(upload.id), data);
  });

  it('a PATCH cut in the middle, then resumed, falls back to reading the file and gets the right hash', async () => {
    const { server, processed } = await start();
    const total = 400_000;
    const data = gif(total);
    const upload = await create(server, total);
    const { socket, response } = openRawConnection(server.running.port, { timeoutMs: 10_000 });
    response.catch(() => undefined);
    socket.write(patchHead(upload.path, 0, total));
    socket.write(data.subarray(0, 150_000));
    await waitFor(() => server.lifecycle.activeUploads === 1, { timeoutMs: 3_000 });
    await sleep(300);
    socket.destroy();
    await waitFor(() => server.lifecycle.activeUploads === 0, { timeoutMs: 3_000 });
    const head = await rawRequest(server.running.port, buildRequest('HEAD', upload.path, TUS), { head: true });
    const offset = Number(head.headers['upload-offset']);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(total);

    const resumed = await patch(server, upload.path, offset, data.subarray(offset));
    expect(resumed.status).toBe(204);
    expectFallback(await processed(upload.id), data);
  });

  it('a PATCH at the wrong offset (a gap) drops the running digest: the upload falls back and is right', async () => {
    const { server, processed } = await start();
    const data = gif(120_000);
    const upload = await create(server, data.length);
    expect((await patch(server, upload.path, 0, data.subarray(0, 40_000))).status).toBe(204);
    const gap = await patch(server, upload.path, 60_000, data.subarray(60_000, 80_000));
    expect(gap.status).toBe(409);
    expect((await patch(server, upload.path, 40_000, data.subarray(40_000))).status).toBe(204);
    expectFallback(await processed(upload.id), data);
  });
});
