import fs from 'node:fs';
import { DetailedError } from 'tus-js-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signHookBody, verifyHookSignature } from '../server/src/hooks/signature.js';
import { postHook } from '../server/src/hooks/http-hook-client.js';
import { ByteSource, KiB, makeFile, MiB, type TestFile } from './support/files.js';
import { Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createUpload, encodeMetadata, fetchWithin, head, patch, rawPatch, slowHttpStack, startClientUpload, TUS, type ClientRun } from './support/tus.js';
import { startWebhookReceiver, type HookDelivery, type WebhookReceiver } from './support/webhook-receiver.js';
import { uploadIdOf } from './support/status.js';

const SECRET = 'e2e-hook-secret-0123456789';
const NOTIFYING = ['post-create', 'post-receive', 'post-finish', 'post-process'] as const;


function decodeMetadata(header: string | null): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const pair of (header ?? '').split(',')) {
    const [key, value = ''] = pair.trim().split(' ');
    if (key) metadata[key] = Buffer.from(value, 'base64').toString('utf8');
  }
  return metadata;
}

/** The client's error for an upload expected to fail: the DetailedError tus-js-client reports. */
async function clientFailure(run: ClientRun): Promise<{ status: number | undefined; body: string | undefined; error: DetailedError }> {
  const error = await run.done.then(
    (url) => {
      throw new Error(`the upload was expected to fail but finished at ${url}`);
    },
    (e: unknown) => e,
  );
  if (!(error instanceof DetailedError)) throw error;
  return { status: error.originalResponse?.getStatus(), body: error.originalResponse?.getBody(), error };
}

/** An error body the client may see: our code and message, nothing from the receiver's internals. */
function expectNoInternals(body: string, receiver: WebhookReceiver): void {
  expect(body).toMatch(/^ERR_[A-Z_]+: [^\n]+\n$/);
  expect(body).not.toContain(new URL(receiver.url).port);
  expect(body).not.toContain('127.0.0.1');
  expect(body).not.toMatch(/hook endpoint|fetch failed|AbortError|TimeoutError|\bat .+:\d+/);
}

/** Every delivery of types `earlier` arrived before every delivery of types `later`. */
function expectAllBefore(deliveries: readonly HookDelivery[], earlier: string, later: string): void {
  const first = deliveries.filter((d) => d.type === earlier).map((d) => d.seq);
  const second = deliveries.filter((d) => d.type === later).map((d) => d.seq);
  if (first.length === 0 || second.length === 0) return;
  expect(Math.max(...first), `${earlier} before ${later}: ${deliveries.map((d) => d.type).join(' ')}`).toBeLessThan(Math.min(...second));
}

describe('hooks over HTTP (HOOKS_URL)', () => {
  const scope = new Scope();
  let receiver: WebhookReceiver;
  let server: ServerProcess;
  let file: TestFile;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    server = await scope.server({
      env: {
        HOOKS_URL: receiver.url,
        HOOKS_SECRET: SECRET,
        HOOKS_TIMEOUT: '2s',
        HOOKS_RETRY_DELAY: '200ms',
        HOOKS_MAX_ATTEMPTS: '8',
        POST_RECEIVE_INTERVAL: '100ms',
      },
    });
    // Closed again (idempotent) before the server stops, so a held delivery cannot slow its shutdown.
    scope.defer(() => receiver.close());
    file = await makeFile(await scope.tempDir(), 'hooked-512k.bin', 512 * KiB, 'hooks-lifecycle');
  });
  afterEach(() => receiver.resetScripts());
  afterAll(() => scope.dispose());

  it('signs every delivery, sends each hook its payload, and keeps per-upload order', async () => {
    const run = startClientUpload(fs.createReadStream(file.path), {
      endpoint: server.endpoint,
      chunkSize: 256 * KiB,
      uploadSize: file.size,
      metadata: { filename: 'lifecycle.bin', filetype: 'application/octet-stream' },
      // 256 KiB/s: each 256 KiB PATCH streams for about a second, so progress hooks fire.
      httpStack: slowHttpStack(256 * KiB),
    });
    const url = await run.done;
    const id = uploadIdOf(url);
    await receiver.waitForDelivered(id, 'post-process');

    const all = receiver.forUpload(id);
    const types = all.map((d) => d.type);
    for (const type of ['pre-create', 'post-create', 'post-receive', 'pre-finish', 'post-finish', 'post-process']) expect(types, type).toContain(type);
    expect(receiver.failures).toEqual([]);
    for (const d of all) expect(d.answeredStatus, `${d.type} answered`).toBe(200);

    // Order per upload: notifying hooks as a chain, each blocking hook before its notifying twin.
    expectAllBefore(all, 'post-create', 'post-receive');
    expectAllBefore(all, 'post-receive', 'post-finish');
    expectAllBefore(all, 'post-create', 'post-finish');
    expectAllBefore(all, 'post-finish', 'post-process');
    expectAllBefore(all, 'pre-create', 'post-create');
    expectAllBefore(all, 'pre-finish', 'post-finish');
    expect(types.filter((t) => t !== 'post-receive' && t !== 'pre-finish')).toEqual(['pre-create', 'post-create', 'post-finish', 'post-process']);

    // Signatures: valid on every delivery, and only for the exact body and a fresh timestamp.
    for (const d of all) {
      const timestamp = d.headers['hook-timestamp'] ?? '';
      const signature = d.headers['hook-signature'] ?? '';
      expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(verifyHookSignature(SECRET, { body: d.rawBody, signature, timestamp }, { now: d.receivedAt })).toBe(true);
      expect(verifyHookSignature(SECRET, { body: d.rawBody.replace(id, id.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))), signature, timestamp }, { now: d.receivedAt })).toBe(false);
      expect(verifyHookSignature(SECRET, { body: `${d.rawBody} `, signature, timestamp }, { now: d.receivedAt })).toBe(false);
      expect(verifyHookSignature('another-secret-of-16+', { body: d.rawBody, signature, timestamp }, { now: d.receivedAt })).toBe(false);
      // Replayed ten minutes later: refused.
      expect(verifyHookSignature(SECRET, { body: d.rawBody, signature, timestamp }, { now: d.receivedAt + 10 * 60_000 })).toBe(false);
      // Re-stamped with the current time but not re-signed: refused.
      expect(verifyHookSignature(SECRET, { body: d.rawBody, signature, timestamp: String(Number(timestamp) + 1) }, { now: d.receivedAt })).toBe(false);
      expect(d.headers['content-type']).toMatch(/^application\/json/);
      expect(d.headers['hook-type']).toBe(d.type);
      expect(d.headers['hook-delivery-id']).toBe(d.payload.deliveryId);
      expect(d.payload.deliveryId).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number.isNaN(Date.parse(d.payload.sentAt))).toBe(false);
    }

    // Payloads: the upload as each hook sees it, and the request behind it.
    const metadata = { filename: 'lifecycle.bin', filetype: 'application/octet-stream' };
    const preCreate = receiver.forUpload(id, 'pre-create')[0]!.payload;
    expect(preCreate.upload).toEqual({ id, size: file.size, offset: 0, metadata, createdAt: expect.any(String) });
    expect(preCreate.request).toMatchObject({ method: 'POST', uri: '/files/' });
    expect(preCreate.request?.remoteAddress).toMatch(/127\.0\.0\.1$/);
    expect(preCreate.request?.headers).toMatchObject({ 'tus-resumable': '1.0.0', 'upload-length': String(file.size), 'upload-metadata': encodeMetadata(metadata) });
    expect(Object.keys(preCreate.request?.headers ?? {}).filter((name) => name.startsWith('x-upload-server'))).toEqual([]);

    const postCreate = receiver.forUpload(id, 'post-create')[0]!.payload;
    expect(postCreate.upload).toMatchObject({ id, size: file.size, offset: 0, metadata });
    expect(postCreate.request).toMatchObject({ method: 'POST', uri: '/files/' });
    expect(postCreate.attempt).toBe(1);

    const progress = receiver.forUpload(id, 'post-receive').map((d) => d.payload);
    for (const p of progress) {
      expect(p.request).toBeNull();
      expect(p.upload).toMatchObject({ id, size: file.size, metadata });
      expect(p.upload.offset).toBeGreaterThan(0);
      expect(p.upload.offset).toBeLessThanOrEqual(file.size);
    }
    const offsets = progress.map((p) => p.upload.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);

    const preFinish = receiver.forUpload(id, 'pre-finish');
    expect(preFinish).toHaveLength(1);
    expect(preFinish[0]!.payload.upload).toMatchObject({ id, size: file.size, offset: file.size, metadata });
    expect(preFinish[0]!.payload.request).toMatchObject({ method: 'PATCH', uri: `/files/${id}` });
    expect(preFinish[0]!.payload.request?.headers).toMatchObject({ 'upload-offset': String(256 * KiB), 'content-type': 'application/offset+octet-stream' });

    const postFinish = receiver.forUpload(id, 'post-finish');
    expect(postFinish).toHaveLength(1);
    expect(postFinish[0]!.payload.upload).toMatchObject({ id, size: file.size, offset: file.size, metadata });
    expect(postFinish[0]!.payload.request).toMatchObject({ method: 'PATCH', uri: `/files/${id}` });

    const postProcess = receiver.forUpload(id, 'post-process');
    expect(postProcess).toHaveLength(1);
    expect(postProcess[0]!.payload.request).toBeNull();
    expect(postProcess[0]!.payload.upload).toMatchObject({ id, size: file.size, offset: file.size, metadata });
    expect(postProcess[0]!.payload.processing).toMatchObject({ state: 'done', error: null, results: { sha256: { sha256: file.sha256, bytes: file.size } } });
  });

  it('retries a failing receiver with backoff: post-finish arrives on attempt 3 with the same deliveryId, and order holds', async () => {
    receiver.script('post-finish', { failFirst: 2 });
    const run = startClientUpload(new ByteSource('hooks-retry').bytes(0, 64 * KiB), { endpoint: server.endpoint, metadata: { filename: 'retry.bin' } });
    const id = uploadIdOf(await run.done);
    const delivered = await receiver.waitForDelivered(id, 'post-process', 30_000);

    const finishes = receiver.forUpload(id, 'post-finish');
    expect(finishes.map((d) => d.attempt)).toEqual([1, 2, 3]);
    expect(finishes.map((d) => d.answeredStatus)).toEqual([500, 500, 200]);
    expect(new Set(finishes.map((d) => d.deliveryId)).size).toBe(1);
    expect(new Set(finishes.map((d) => d.headers['hook-delivery-id'])).size).toBe(1);
    // A retry carries the same event: only attempt and sentAt change.
    const strip = (d: HookDelivery) => ({ ...d.payload, attempt: 0, sentAt: '' });
    expect(strip(finishes[1]!)).toEqual(strip(finishes[0]!));
    expect(strip(finishes[2]!)).toEqual(strip(finishes[0]!));
    // Nothing of this upload overtook the failing delivery.
    expect(delivered.seq).toBeGreaterThan(finishes[2]!.seq);
    expectAllBefore(receiver.forUpload(id), 'post-create', 'post-finish');
    expectAllBefore(receiver.forUpload(id), 'post-finish', 'post-process');

    // De-duplication ids: one per event, across every hook of this upload.
    const byId = new Map<string, HookDelivery[]>();
    for (const d of receiver.forUpload(id)) byId.set(d.deliveryId, [...(byId.get(d.deliveryId) ?? []), d]);
    for (const group of byId.values()) {
      expect(new Set(group.map((d) => `${d.type}@${d.payload.upload.offset}`)).size).toBe(1);
      expect(group.map((d) => d.attempt)).toEqual(group.map((_, i) => i + 1));
    }
    const events = [...byId.values()].map((group) => `${group[0]!.type}@${group[0]!.payload.upload.offset}`);
    expect(new Set(events).size).toBe(events.length);
    expect(byId.size).toBe(receiver.forUpload(id).length - 2);
    expect(receiver.failures).toEqual([]);
  });

  it('rejects a creation from pre-create: tus-js-client gets the status and message', async () => {
    receiver.script('pre-create', (d) => {
      const name = d.payload.upload.metadata.filename;
      if (name === 'forbidden.mp4') return { json: { reject: { status: 403, message: 'uploads from this account are paused' } } };
      if (name === 'unprocessable.mp4') return { status: 422, json: { message: 'filename must not contain the word unprocessable' } };
      return undefined;
    });

    const forbidden = await clientFailure(startClientUpload(Buffer.from('x'.repeat(100)), { endpoint: server.endpoint, metadata: { filename: 'forbidden.mp4' } }));
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toBe('ERR_UPLOAD_REJECTED: uploads from this account are paused\n');
    expect(forbidden.error.message).toContain('uploads from this account are paused');

    const unprocessable = await clientFailure(startClientUpload(Buffer.from('y'.repeat(100)), { endpoint: server.endpoint, metadata: { filename: 'unprocessable.mp4' } }));
    expect(unprocessable.status).toBe(422);
    expect(unprocessable.body).toBe('ERR_UPLOAD_REJECTED: filename must not contain the word unprocessable\n');

    // The uploads were never created: the ids pre-create saw do not exist.
    const rejected = receiver.deliveries.filter((d) => d.type === 'pre-create' && ['forbidden.mp4', 'unprocessable.mp4'].includes(d.payload.upload.metadata.filename ?? ''));
    expect(rejected).toHaveLength(2);
    for (const d of rejected) {
      expect((await head(`${server.endpoint}${d.uploadId}`)).status).toBe(404);
    }
  });

  it('stores the metadata pre-create answers with: HEAD, post-create and the status resource show it', async () => {
    receiver.script('pre-create', (d) =>
      d.payload.upload.metadata.filename === 'original.mp4' ? { json: { metadata: { ...d.payload.upload.metadata, filename: 'renamed.mp4', owner: 'user-42' } } } : undefined,
    );
    const run = startClientUpload(Buffer.from('z'.repeat(1000)), { endpoint: server.endpoint, metadata: { filename: 'original.mp4', filetype: 'video/mp4' } });
    const url = await run.done;
    const id = uploadIdOf(url);
    const expected = { filename: 'renamed.mp4', filetype: 'video/mp4', owner: 'user-42' };

    const state = await head(url);
    expect(state.status).toBe(200);
    expect(decodeMetadata(state.headers.get('upload-metadata'))).toEqual(expected);
    expect((await receiver.waitForDelivered(id, 'post-create')).payload.upload.metadata).toEqual(expected);
    const status = await fetchWithin(`${server.url}/uploads/${id}`);
    expect(((await status.json()) as { metadata: unknown }).metadata).toEqual(expected);
    await receiver.waitForDelivered(id, 'post-process');
  });

  it('answers 504 when pre-create times out and 502 when the receiver fails, never with internals', async () => {
    receiver.script('pre-create', (d) => {
      const name = d.payload.upload.metadata.filename;
      if (name === 'slow.mp4') return { delayMs: 6_000 };
      if (name === 'broken.mp4') return { status: 500, text: 'Error: password=hunter2 at /srv/hooks/handler.js:12:7' };
      return undefined;
    });
    const post = (filename: string) =>
      fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10', 'Upload-Metadata': encodeMetadata({ filename }) } });

    const slow = await post('slow.mp4');
    const slowBody = await slow.text();
    expect(slow.status).toBe(504);
    expect(slowBody.startsWith('ERR_HOOK_TIMEOUT: ')).toBe(true);
    expect(slow.headers.get('location')).toBeNull();
    expectNoInternals(slowBody, receiver);

    const broken = await post('broken.mp4');
    const brokenBody = await broken.text();
    expect(broken.status).toBe(502);
    expect(brokenBody.startsWith('ERR_HOOK_FAILED: ')).toBe(true);
    expect(brokenBody).not.toContain('hunter2');
    expect(brokenBody).not.toContain('/srv/');
    expectNoInternals(brokenBody, receiver);

    // tus-js-client sees the same status.
    const viaClient = await clientFailure(startClientUpload(Buffer.from('b'), { endpoint: server.endpoint, metadata: { filename: 'broken.mp4' } }));
    expect(viaClient.status).toBe(502);
    expect(viaClient.body?.startsWith('ERR_HOOK_FAILED: ')).toBe(true);
  });

  it('lets pre-terminate veto a DELETE; post-terminate follows a DELETE that happens', async () => {
    const url = await createUpload(server.endpoint, { length: 1000, metadata: { filename: 'legal-hold.bin' } });
    const id = uploadIdOf(url);
    expect((await patch(url, 0, new ByteSource('hold').bytes(0, 400))).status).toBe(204);

    receiver.script('pre-terminate', (d) =>
      d.payload.upload.id === id ? { json: { reject: { status: 403, message: 'this upload is under legal hold' } } } : undefined,
    );
    const vetoed = await fetchWithin(url, { method: 'DELETE', headers: TUS });
    expect(vetoed.status).toBe(403);
    expect(await vetoed.text()).toBe('ERR_UPLOAD_REJECTED: this upload is under legal hold\n');
    const still = await head(url);
    expect(still.status).toBe(200);
    expect(still.offset).toBe(400);

    const preTerminate = receiver.forUpload(id, 'pre-terminate');
    expect(preTerminate).toHaveLength(1);
    expect(preTerminate[0]!.payload.upload).toMatchObject({ id, size: 1000, offset: 400, metadata: { filename: 'legal-hold.bin' } });
    expect(preTerminate[0]!.payload.request).toMatchObject({ method: 'DELETE', uri: `/files/${id}` });

    // A receiver answering 409 itself vetoes too, with its own message.
    receiver.script('pre-terminate', (d) => (d.payload.upload.id === id ? { status: 409, json: { error: 'still being reviewed' } } : undefined));
    const conflict = await fetchWithin(url, { method: 'DELETE', headers: TUS });
    expect(conflict.status).toBe(409);
    expect(await conflict.text()).toBe('ERR_UPLOAD_REJECTED: still being reviewed\n');
    expect((await head(url)).status).toBe(200);

    receiver.resetScripts();
    const deleted = await fetchWithin(url, { method: 'DELETE', headers: TUS });
    await deleted.arrayBuffer();
    expect(deleted.status).toBe(204);
    expect((await head(url)).status).toBe(404);
    const postTerminate = await receiver.waitForDelivered(id, 'post-terminate');
    expect(postTerminate.payload.upload).toMatchObject({ id, size: 1000, offset: 400, metadata: { filename: 'legal-hold.bin' } });
    expect(postTerminate.payload.request).toMatchObject({ method: 'DELETE', uri: `/files/${id}` });
    expect(receiver.forUpload(id, 'pre-terminate')).toHaveLength(3);
    expect(receiver.forUpload(id, 'post-terminate')).toHaveLength(1);
    expectAllBefore(receiver.forUpload(id), 'post-create', 'post-terminate');
    expectAllBefore(receiver.forUpload(id), 'pre-terminate', 'post-terminate');
  });

  it('stops an upload when post-receive answers {stopUpload: true}', async () => {
    const size = 4 * MiB;
    const url = await createUpload(server.endpoint, { length: size, metadata: { filename: 'stop-me.bin' } });
    const id = uploadIdOf(url);
    receiver.script('post-receive', (d) => (d.payload.upload.id === id ? { json: { stopUpload: true } } : undefined));

    // About 800 KiB/s: the whole body would take five seconds; the stop lands long before.
    const request = rawPatch(url, 0, { 'Content-Length': size });
    const data = new ByteSource('stop').bytes(0, size);
    const written = await request.writePaced(data, 16 * KiB, 20);
    request.end();
    const response = await withTimeout(request.response, 30_000, 'the stopped PATCH to be answered');
    expect(response.status).toBe(400);
    expect(response.body).toBe('ERR_UPLOAD_STOPPED: this upload was stopped by the server and takes no more bytes\n');
    expect(written).toBeLessThan(size);

    const stopper = receiver.forUpload(id, 'post-receive').find((d) => d.answeredStatus === 200);
    expect(stopper).toBeDefined();
    const state = await head(url);
    expect(state.status).toBe(200);
    expect(state.offset).toBeLessThan(size);

    // Further bytes are refused, whatever the offset.
    const more = await patch(url, state.offset ?? 0, new ByteSource('more').bytes(0, 1024));
    expect(more.status).toBe(400);
    expect(more.text.startsWith('ERR_UPLOAD_STOPPED: ')).toBe(true);
    expect((await head(url)).offset).toBe(state.offset);

    const status = await fetchWithin(`${server.url}/uploads/${id}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ id, state: 'rejected', error: 'stopped by the post-receive hook' });
  });

  it('rejects the last PATCH from pre-finish: the client hears it, post-finish and post-process still report it', async () => {
    receiver.script('pre-finish', (d) =>
      d.payload.upload.metadata.filename === 'refuse-at-end.bin' ? { json: { reject: { status: 422, message: 'checksum list says no' } } } : undefined,
    );
    const url = await createUpload(server.endpoint, { length: 2048, metadata: { filename: 'refuse-at-end.bin' } });
    const id = uploadIdOf(url);
    const last = await patch(url, 0, new ByteSource('end').bytes(0, 2048));
    expect(last.status).toBe(422);
    expect(last.text).toBe('ERR_UPLOAD_REJECTED: checksum list says no\n');

    const processed = await receiver.waitForDelivered(id, 'post-process');
    expect(processed.payload.processing).toMatchObject({ state: 'rejected', error: 'rejected by the pre-finish hook: checksum list says no' });
    expect(receiver.forUpload(id, 'post-finish')).toHaveLength(1);
    expectAllBefore(receiver.forUpload(id), 'pre-finish', 'post-finish');
    expectAllBefore(receiver.forUpload(id), 'post-finish', 'post-process');
    const status = await fetchWithin(`${server.url}/uploads/${id}`);
    expect(await status.json()).toMatchObject({ state: 'rejected' });
  });
});

describe('notifying hooks never hold up an upload', () => {
  const scope = new Scope();
  let receiver: WebhookReceiver;
  let server: ServerProcess;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    // A receiver that hangs for up to a minute before the server gives up on it.
    server = await scope.server({ env: { HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT: '60s', HOOKS_RETRY_DELAY: '200ms', SHUTDOWN_TIMEOUT: '5s' } });
    scope.defer(() => receiver.close());
  });
  afterAll(() => scope.dispose());

  it('finishes uploads while the receiver holds every notification open, then delivers them all', async () => {
    for (const type of NOTIFYING) receiver.script(type, { hold: true });
    const runs = [0, 1, 2].map((i) =>
      startClientUpload(new ByteSource(`hang-${i}`).bytes(0, 256 * KiB), { endpoint: server.endpoint, chunkSize: 64 * KiB, metadata: { filename: `hang-${i}.bin` } }, 30_000),
    );
    const ids = (await Promise.all(runs.map((run) => run.done))).map((url) => uploadIdOf(url));

    // Every upload finished although none of its notifications had been answered.
    await receiver.waitFor((all) => (ids.every((id) => all.some((d) => d.uploadId === id && d.type === 'post-create')) ? true : undefined), 'post-create of every upload');
    for (const id of ids) {
      const notified = receiver.forUpload(id).filter((d) => (NOTIFYING as readonly string[]).includes(d.type));
      expect(notified.map((d) => d.answeredStatus)).toEqual(notified.map(() => undefined));
      expect(receiver.forUpload(id, 'pre-create')[0]?.answeredStatus).toBe(200);
      expect(receiver.forUpload(id, 'pre-finish')[0]?.answeredStatus).toBe(200);
      expect((await head(`${server.endpoint}${id}`)).offset).toBe(256 * KiB);
    }
    expect(receiver.heldCount()).toBeGreaterThanOrEqual(ids.length);

    // Once the receiver answers, everything queued behind the held deliveries arrives, in order.
    receiver.resetScripts();
    receiver.releaseHeld();
    for (const id of ids) {
      await receiver.waitForDelivered(id, 'post-process', 30_000);
      const all = receiver.forUpload(id);
      expectAllBefore(all, 'post-create', 'post-finish');
      expectAllBefore(all, 'post-finish', 'post-process');
      expect(all.filter((d) => d.type === 'post-create').map((d) => d.attempt)).toEqual([1]);
    }
    expect(receiver.failures).toEqual([]);
  });
});

describe('notifications survive a crash of the server', () => {
  const scope = new Scope();
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
  });
  afterAll(() => scope.dispose());

  it('delivers a post-finish that was failing when the server was SIGKILLed, after the restart, with the same deliveryId', async () => {
    const storageDir = await scope.tempDir('tus-e2e-hooks-crash-');
    const env = { HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_RETRY_DELAY: '200ms' };
    receiver.script('post-finish', { status: 500, text: 'down' });
    const first = await scope.server({ storageDir, env });
    const id = uploadIdOf(await startClientUpload(new ByteSource('crash-hook').bytes(0, 32 * KiB), { endpoint: first.endpoint, metadata: { filename: 'crash.bin' } }).done);
    const failed = await receiver.waitFor((all) => all.find((d) => d.uploadId === id && d.type === 'post-finish' && d.answeredStatus === 500), 'a failed post-finish');
    first.kill('SIGKILL');
    await withTimeout(first.exited, 10_000, 'the killed server to exit');
    expect(receiver.forUpload(id, 'post-process')).toEqual([]);

    receiver.resetScripts();
    await scope.server({ storageDir, env });
    const delivered = await receiver.waitForDelivered(id, 'post-finish', 30_000);
    expect(delivered.deliveryId).toBe(failed.deliveryId);
    expect(delivered.attempt).toBeGreaterThanOrEqual(failed.attempt);
    const processed = await receiver.waitForDelivered(id, 'post-process', 30_000);
    expect(processed.seq).toBeGreaterThan(delivered.seq);
    expect(processed.payload.processing?.state).toBe('done');
    expect(receiver.forUpload(id, 'post-create')).toHaveLength(1);
    expect(receiver.failures).toEqual([]);
  });
});

describe('built-in creation rules (ALLOWED_TYPES, REQUIRED_METADATA, MAX_METADATA_SIZE) through tus-js-client', () => {
  const scope = new Scope();
  let receiver: WebhookReceiver;
  let server: ServerProcess;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    server = await scope.server({
      env: { HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, ALLOWED_TYPES: 'video/*', REQUIRED_METADATA: 'filename', MAX_METADATA_SIZE: '1KiB' },
    });
    scope.defer(() => receiver.close());
  });
  afterAll(() => scope.dispose());

  const upload = (metadata: Record<string, string>) => startClientUpload(Buffer.from('MZ not really a video'), { endpoint: server.endpoint, metadata });

  it('refuses a type outside ALLOWED_TYPES with 415 naming the type and what is allowed', async () => {
    const failure = await clientFailure(upload({ filename: 'setup.exe', filetype: 'application/x-msdownload' }));
    expect(failure.status).toBe(415);
    expect(failure.body).toBe('ERR_TYPE_NOT_ALLOWED: filetype application/x-msdownload is not allowed; allowed: video/*\n');
    expect(failure.error.message).toContain('filetype application/x-msdownload is not allowed; allowed: video/*');

    const untyped = await clientFailure(upload({ filename: 'clip.mp4' }));
    expect(untyped.status).toBe(415);
    expect(untyped.body).toBe('ERR_TYPE_NOT_ALLOWED: filetype metadata is required; allowed: video/*\n');
  });

  it('refuses an upload without the required filename with 400', async () => {
    const failure = await clientFailure(upload({ filetype: 'video/mp4' }));
    expect(failure.status).toBe(400);
    expect(failure.body).toBe('ERR_MISSING_METADATA: missing required metadata: filename (send it in Upload-Metadata)\n');
    // A filename that sanitizes to nothing counts as missing.
    const dots = await clientFailure(upload({ filename: ' ... ', filetype: 'video/mp4' }));
    expect(dots.status).toBe(400);
    expect(dots.body?.startsWith('ERR_MISSING_METADATA: ')).toBe(true);
  });

  it('refuses Upload-Metadata over MAX_METADATA_SIZE with 400', async () => {
    const failure = await clientFailure(upload({ filename: 'big.mp4', filetype: 'video/mp4', note: 'n'.repeat(2000) }));
    expect(failure.status).toBe(400);
    expect(failure.body).toMatch(/^ERR_INVALID_UPLOAD_METADATA: Upload-Metadata is .+; the limit is 1 KiB\n$/);
  });

  it('runs pre-create only for what passes the rules, with the filename sanitized', async () => {
    const url = await createUpload(server.endpoint, { length: 10, metadata: { filename: '../../etc/passwd.mp4', filetype: 'video/mp4' } });
    const id = uploadIdOf(url);
    const preCreate = await receiver.waitForDelivered(id, 'pre-create');
    expect(preCreate.payload.upload.metadata).toEqual({ filename: '_.._etc_passwd.mp4', filetype: 'video/mp4' });
    expect(decodeMetadata((await head(url)).headers.get('upload-metadata'))).toEqual({ filename: '_.._etc_passwd.mp4', filetype: 'video/mp4' });
    // None of the refused creations above reached the hook.
    expect(receiver.deliveries.filter((d) => d.type === 'pre-create').map((d) => d.uploadId)).toEqual([id]);
    expect(receiver.failures).toEqual([]);
  });
});

describe('the webhook receiver itself', () => {
  const scope = new Scope();
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
  });
  afterAll(() => scope.dispose());

  it('accepts what postHook signs and refuses a tampered body or an old timestamp', async () => {
    const event = { type: 'post-finish' as const, upload: { id: 'a'.repeat(32), size: 1, offset: 1, metadata: {}, createdAt: null }, request: null };
    await postHook({ url: receiver.url, secret: SECRET, timeoutMs: 5_000 }, event, { id: 'delivery-1', attempt: 2 });
    expect(receiver.deliveries).toHaveLength(1);
    expect(receiver.deliveries[0]).toMatchObject({ type: 'post-finish', deliveryId: 'delivery-1', attempt: 2, uploadId: 'a'.repeat(32), answeredStatus: 200 });

    const genuine = receiver.deliveries[0]!;
    const hookHeaders = Object.fromEntries(Object.entries(genuine.headers).filter(([name]) => name.startsWith('hook-')));
    const send = (body: string, headers: Record<string, string>) => fetchWithin(receiver.url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
    const tampered = await send(genuine.rawBody.replace('"offset":1', '"offset":0'), hookHeaders);
    expect(tampered.status).toBe(401);
    const old = Math.floor(Date.now() / 1000) - 3600;
    const replay = await send(genuine.rawBody, { ...hookHeaders, 'hook-timestamp': String(old), 'hook-signature': signHookBody(SECRET, old, genuine.rawBody) });
    expect(replay.status).toBe(401);
    expect(receiver.failures.map((f) => f.reason)).toEqual(['invalid signature', 'invalid signature']);
    expect(receiver.deliveries).toHaveLength(1);
  });
});
