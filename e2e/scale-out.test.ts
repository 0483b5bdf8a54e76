import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ByteSource, MiB, sha256 } from './support/files.js';
import { s3ServerEnv } from './services/s3-env.js';
import { startRoundRobinProxy } from './support/round-robin-proxy.js';
import { findFreePort, pollUntil, Scope, type ServerProcess } from './support/server-process.js';
import { freeze, stepUntil, uploadIdOf } from './support/status.js';
import { download, fetchWithin, head, OCTET, rawPatch, slowHttpStack, startClientUpload, TUS } from './support/tus.js';

/**
 * Several instances of the real server sharing one S3 bucket (Ceph) and one Redis, as in
 * production behind a load balancer without affinity: locks, the processing queue, status
 * records and the S3 metadata cache are shared; each instance has its own STORAGE_DIR.
 */
const s3 = inject('s3');
const redisUrl = inject('redisUrl');

/** The environment every instance of one deployment shares: same bucket prefix, same Redis prefix. */
function deployment(extra: Record<string, string> = {}): Record<string, string> {
  const tag = randomBytes(5).toString('hex');
  return s3ServerEnv(s3, {
    S3_PREFIX: `scale-out-${tag}/`,
    REDIS_URL: redisUrl ?? '',
    REDIS_PREFIX: `e2e-${tag}:`,
    PROCESSING_RETRY_DELAY: '200ms',
    ...extra,
  });
}

/** How many times an instance logged that it processed `id` (its processors ran to the end). */
const processedLines = (servers: readonly ServerProcess[], id: string) =>
  servers.flatMap((s) => s.logs()).filter((line) => line.msg === 'upload processed' && line.uploadId === id).length;

/**
 * How many instances logged processing the upload. The status reads done a moment before the
 * line is logged (the settled marker is written in between, and logs are flushed asynchronously),
 * so it waits for the first line, then counts.
 */
async function processedCount(servers: readonly ServerProcess[], id: string): Promise<number> {
  await pollUntil(() => (processedLines(servers, id) > 0 ? true : undefined), `the "upload processed" line of ${id}`).catch(() => undefined);
  return processedLines(servers, id);
}

async function waitForDone(baseUrl: string, id: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  return pollUntil(
    async () => {
      const res = await fetchWithin(`${baseUrl}/uploads/${id}`);
      const body = (await res.json()) as Record<string, unknown>;
      return body.state === 'done' || body.state === 'failed' ? body : undefined;
    },
    `upload ${id} to be processed`,
    timeoutMs,
    100,
  );
}

describe.skipIf(!redisUrl)('several instances on one S3 bucket and one Redis', () => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  async function twoInstances(extra: Record<string, string> = {}): Promise<[ServerProcess, ServerProcess]> {
    const env = deployment(extra);
    return Promise.all([scope.server({ env }), scope.server({ env })]);
  }

  it('a tus-js-client upload whose requests alternate between the instances ends byte-identical, processed once', async () => {
    const [a, b] = await twoInstances();
    const proxy = await startRoundRobinProxy([a.url, b.url]);
    scope.defer(() => proxy.close());
    // 5 MiB chunks against 8 MiB S3 parts: most PATCHes leave an incomplete part that the
    // *other* instance must pick up from S3 on the next one.
    const content = new ByteSource('alternating').bytes(0, 23 * MiB);
    const run = startClientUpload(content, { endpoint: `${proxy.url}/files/`, chunkSize: 5 * MiB, metadata: { filename: 'alternating.bin' } });
    const url = await run.done;
    expect(url.startsWith(`${proxy.url}/files/`)).toBe(true);

    const patches = proxy.requests().filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(5);
    expect(patches.every((p) => p.status === 204)).toBe(true);
    expect(new Set(patches.map((p) => p.backend))).toEqual(new Set([0, 1]));

    const fromA = await download(`${a.url}/files/${uploadIdOf(url)}`);
    const fromB = await download(`${b.url}/files/${uploadIdOf(url)}`);
    expect(fromA.sha256).toBe(sha256(content));
    expect(fromB.sha256).toBe(sha256(content));

    const id = uploadIdOf(url);
    const status = await waitForDone(b.url, id);
    expect(status.state).toBe('done');
    expect((status.processors as Record<string, { result?: { sha256?: string } }>).sha256?.result?.sha256).toBe(sha256(content));
    // Both instances look at the finished upload again (HEAD re-ensures processing); still once.
    for (const server of [a, b]) expect((await head(`${server.url}/files/${id}`)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await processedCount([a, b], id)).toBe(1);
  });

  it('two PATCHes of one upload through different instances: at most one wins, bytes never mix', async () => {
    const [a, b] = await twoInstances();
    const length = 12 * MiB;
    const created = await fetchWithin(a.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(length) } });
    expect(created.status).toBe(201);
    const id = uploadIdOf(created.headers.get('location') ?? '');

    const send = (server: ServerProcess, fill: string) =>
      fetchWithin(`${server.url}/files/${id}`, {
        method: 'PATCH',
        headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OCTET },
        body: Buffer.alloc(length, fill),
      }).then(async (res) => ({ status: res.status, text: await res.text() }));
    const results = await Promise.all([send(a, 'a'), send(b, 'b')]);
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 204).length).toBeLessThanOrEqual(1);
    // The loser is refused in tus terms (409 offset mismatch, 423 locked, or cut while the winner took over).
    for (const r of results) expect([204, 400, 409, 423].includes(r.status), `${r.status} ${r.text}`).toBe(true);

    // Finish whatever stands with a third filler, then read it back from the bucket.
    const offset = (await head(`${b.url}/files/${id}`)).offset ?? -1;
    expect(offset).toBeGreaterThanOrEqual(0);
    if (offset < length) {
      const rest = await fetchWithin(`${a.url}/files/${id}`, {
        method: 'PATCH',
        headers: { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': OCTET },
        body: Buffer.alloc(length - offset, 'c'),
      });
      expect(rest.status, await rest.text()).toBe(204);
    }
    const res = await fetchWithin(`${a.url}/files/${id}`);
    const stored = Buffer.from(await res.arrayBuffer());
    expect(stored.length).toBe(length);
    const text = stored.toString('latin1');
    // One writer's bytes, then (if it was cut) the filler: never a's and b's interleaved.
    expect(/^(a*|b*)c*$/.test(text)).toBe(true);
    expect(text.indexOf('c') === -1 ? length : text.indexOf('c')).toBe(offset);
    if (statuses.includes(204)) expect(offset).toBe(length);
  });

  it('SIGKILL one instance mid-upload: the client resumes through the other one', async () => {
    const [a, b] = await twoInstances();
    const content = new ByteSource('kill-a').bytes(0, 24 * MiB);
    let killedAt = 0;
    // Slowed so the kill lands inside a PATCH; 8 MiB chunks so whole S3 parts are acknowledged.
    const run = startClientUpload(content, {
      endpoint: a.endpoint,
      chunkSize: 8 * MiB,
      httpStack: slowHttpStack(12 * MiB),
      onProgress: (sent) => {
        if (killedAt === 0 && sent > 13 * MiB) {
          killedAt = sent;
          a.kill('SIGKILL');
        }
      },
    });
    await expect(run.done).rejects.toThrow();
    expect(killedAt).toBeGreaterThan(0);
    await a.exited;
    const urlAtA = run.upload.url ?? '';
    const id = uploadIdOf(urlAtA);

    // A died holding the upload's lock; B waits for it to expire (LOCK_TTL_MS, 10 s), then answers.
    const resumedAt = await head(`${b.url}/files/${id}`, 40_000);
    expect(resumedAt.status).toBe(200);
    expect(resumedAt.offset).toBeGreaterThanOrEqual(8 * MiB);
    expect(resumedAt.offset).toBeLessThan(content.length);

    let firstByteSent = -1;
    const resumed = startClientUpload(content, {
      uploadUrl: `${b.url}/files/${id}`,
      chunkSize: 8 * MiB,
      onProgress: (sent) => {
        if (firstByteSent < 0) firstByteSent = sent;
      },
    });
    await resumed.done;
    // It went on from the offset B reported, not from zero.
    expect(firstByteSent).toBeGreaterThanOrEqual(resumedAt.offset ?? 0);
    expect((await download(`${b.url}/files/${id}`)).sha256).toBe(sha256(content));
    expect((await waitForDone(b.url, id)).state).toBe('done');
    expect(await processedCount([a, b], id)).toBe(1);
  });

  it('a client whose PATCH stalls on one instance reconnects through the other, which takes the upload over', async () => {
    // A stalled PATCH is only ended by IDLE_TIMEOUT; 120 s here, so only a release request can free the lock.
    const [a, b] = await twoInstances({ IDLE_TIMEOUT: '120s' });
    const content = new ByteSource('stalled').bytes(0, 20 * MiB);
    const created = await fetchWithin(a.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(content.length) } });
    const id = uploadIdOf(created.headers.get('location') ?? '');

    // 9 MiB reach A (one 8 MiB part plus 1 MiB of the next), then the link goes quiet, socket open.
    const stalled = rawPatch(`${a.url}/files/${id}`, 0, { 'Content-Length': content.length });
    scope.defer(() => stalled.destroy());
    expect(await stalled.write(content.subarray(0, 9 * MiB))).toBe(true);
    const partsDir = path.join(a.storageDir, '.s3-parts');
    await pollUntil(async () => {
      const sizes = await Promise.all((await fs.readdir(partsDir)).map((f) => fs.stat(path.join(partsDir, f)).then((st) => st.size, () => 0)));
      return sizes.includes(1 * MiB) ? true : undefined;
    }, 'A to buffer the 1 MiB after the first part', 15_000);

    // The client reconnects through B: B asks A over Redis to let go; A stores what it got.
    const atB = await head(`${b.url}/files/${id}`, 40_000);
    expect(atB.status).toBe(200);
    expect(atB.offset).toBe(9 * MiB);
    // A ends the stalled PATCH, answering with what it kept (or the connection just closes).
    const cut = await stalled.response.catch(() => undefined);
    if (cut?.status === 204) expect(cut.headers['upload-offset']).toBe(String(9 * MiB));

    const rest = await fetchWithin(`${b.url}/files/${id}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': String(9 * MiB), 'Content-Type': OCTET },
      body: content.subarray(9 * MiB),
    });
    expect(rest.status, await rest.text()).toBe(204);
    expect((await download(`${a.url}/files/${id}`)).sha256).toBe(sha256(content));
  });

  it('an instance killed while it holds a processing job: another one runs it after the lease, once', async () => {
    const env = deployment();
    const a = await scope.server({ env });
    const content = new ByteSource('lease').bytes(0, 64 * MiB);
    const run = startClientUpload(content, { endpoint: a.endpoint, chunkSize: 32 * MiB, onSuccess: () => a.kill('SIGSTOP') });
    const id = uploadIdOf(await run.done);
    await freeze(a.pid);

    // Step A until it has leased the job in Redis (it is A's now), then kill it there.
    const redis = new Redis(redisUrl ?? '', { maxRetriesPerRequest: 2 });
    scope.defer(() => redis.quit());
    await stepUntil(a.pid, async () => ((await redis.zcard(`${env.REDIS_PREFIX}jobs:leases`)) > 0 ? true : undefined));
    a.kill('SIGKILL');
    await a.exited;

    // B comes up, waits out A's lease (30 s) and processes the upload; A's run never finished.
    const b = await scope.server({ env });
    const status = await waitForDone(b.url, id, 90_000);
    expect(status.state).toBe('done');
    expect((status.processors as Record<string, { result?: { sha256?: string } }>).sha256?.result?.sha256).toBe(sha256(content));
    expect(await processedCount([b], id)).toBe(1);
    expect(processedLines([a], id)).toBe(0);
  });

  it('two identical final requests (concatenation) racing on two instances build the final upload once', async () => {
    const [a, b] = await twoInstances();
    const source = new ByteSource('concat-race');
    const pieces = [source.bytes(0, 6 * MiB), source.bytes(6 * MiB, 6 * MiB), source.bytes(12 * MiB, MiB)];
    const parts: string[] = [];
    for (const [index, piece] of pieces.entries()) {
      const res = await fetchWithin(`${(index % 2 ? b : a).url}/files`, {
        method: 'POST',
        headers: { ...TUS, 'Upload-Length': String(piece.length), 'Upload-Concat': 'partial', 'Content-Type': OCTET },
        body: piece,
      });
      expect(res.status).toBe(201);
      parts.push(new URL(res.headers.get('location') ?? '').pathname);
    }
    const final = (server: ServerProcess) => fetchWithin(`${server.url}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Concat': `final;${parts.join(' ')}` } });
    const answers = await Promise.all([final(a), final(b), final(a), final(b)]);
    expect(answers.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    const ids = new Set(answers.map((r) => uploadIdOf(r.headers.get('location') ?? '')));
    expect(ids.size).toBe(1);
    const id = [...ids][0] ?? '';
    const built = [a, b].flatMap((s) => s.logs()).filter((line) => line.msg === 'final upload built from partial uploads' && line.uploadId === id);
    expect(built).toHaveLength(1);
    const got = await download(`${b.url}/files/${id}`);
    expect(got.sha256).toBe(sha256(Buffer.concat(pieces)));
    await waitForDone(a.url, id);
    expect(await processedCount([a, b], id)).toBe(1);
  });

  it('a deferred length declared through one instance is seen by the other (shared S3 metadata cache)', async () => {
    const [a, b] = await twoInstances();
    const created = await fetchWithin(a.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Defer-Length': '1' } });
    expect(created.status).toBe(201);
    const id = uploadIdOf(created.headers.get('location') ?? '');
    const first = new ByteSource('deferred').bytes(0, 6 * MiB);
    const second = new ByteSource('deferred').bytes(6 * MiB, 3 * MiB);

    const one = await fetchWithin(`${a.url}/files/${id}`, { method: 'PATCH', headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OCTET }, body: first });
    expect(one.status, await one.text()).toBe(204);
    expect((await head(`${a.url}/files/${id}`)).length).toBeUndefined();

    // B learns the length with the last bytes; A must see the finished upload at once.
    const two = await fetchWithin(`${b.url}/files/${id}`, {
      method: 'PATCH',
      headers: { ...TUS, 'Upload-Offset': String(first.length), 'Upload-Length': String(9 * MiB), 'Content-Type': OCTET },
      body: second,
    });
    expect(two.status, await two.text()).toBe(204);
    expect(two.headers.get('upload-offset')).toBe(String(9 * MiB));
    const atA = await head(`${a.url}/files/${id}`);
    expect(atA.length).toBe(9 * MiB);
    expect(atA.offset).toBe(9 * MiB);
    const got = await download(`${a.url}/files/${id}`);
    expect(got.sha256).toBe(sha256(Buffer.concat([first, second])));
  });
});

describe.skipIf(!redisUrl)('REDIS_URL at startup and in /readyz', () => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  it('refuses to start when Redis does not answer, naming REDIS_URL', async () => {
    const port = await findFreePort();
    const started = scope.server({ env: { REDIS_URL: `redis://127.0.0.1:${port}` }, readyTimeoutMs: 30_000 });
    await expect(started).rejects.toThrow(/REDIS_URL: cannot reach redis:\/\/127\.0\.0\.1:\d+/);
  });

  it('reports Redis in /readyz, and 503 when it stops answering', async () => {
    const port = await findFreePort();
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    scope.defer(() => {
      if (redis.exitCode === null && redis.signalCode === null && redis.pid !== undefined) process.kill(redis.pid, 'SIGKILL');
    });
    await pollUntil(() => promisify(execFile)('redis-cli', ['-p', String(port), 'ping']).then((r) => (r.stdout.includes('PONG') ? true : undefined)), 'a Redis of our own', 10_000, 100);
    const server = await scope.server({ env: { REDIS_URL: `redis://127.0.0.1:${port}` } });

    const ready = await fetchWithin(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', storage: 'file', services: ['redis'] });
    const created = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10' } });
    expect(created.status).toBe(201);
    const uploadUrl = created.headers.get('location') ?? '';

    process.kill(redis.pid ?? 0, 'SIGKILL');
    const down = await pollUntil(async () => {
      const res = await fetchWithin(`${server.url}/readyz`, {}, 15_000);
      return res.status === 503 ? res.json() : undefined;
    }, '/readyz to notice Redis is gone', 30_000, 200);
    expect(down).toEqual({ status: 'unavailable', reason: 'redis is not answering' });
    expect((await fetchWithin(`${server.url}/healthz`)).status).toBe(200);

    // Uploads need their lock and records: a 503 that tus clients retry, not a bare 500.
    for (const [url, init] of [
      [uploadUrl, { method: 'HEAD', headers: TUS }],
      [server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10' } }],
    ] as const) {
      const res = await fetchWithin(url, init, 30_000);
      expect(res.status, `${init.method} while Redis is down`).toBe(503);
      if (init.method !== 'HEAD') expect(await res.text()).toMatch(/^ERR_SERVICE_UNAVAILABLE: /);
    }
  });
});
