import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { DetailedError } from 'tus-js-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ByteSource, KiB, makeFile, MiB, type TestFile } from './support/files.js';
import { Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import {
  EventStreamClient,
  freeze,
  getStatus,
  processingJobState,
  readStatusFile,
  stepUntil,
  thaw,
  uploadIdOf,
  waitForJobState,
  waitForState,
  type StatusFile,
  type UploadStatus,
} from './support/status.js';
import { createUpload, download, fetchWithin, head, startClientUpload, TUS } from './support/tus.js';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook-receiver.js';

/**
 * Post-upload processing against the real server process and the real tus-js-client:
 * the status resource and its events, the finish path failing (tus-js-client#557), SIGKILL
 * at every step of the way, and files that are not what they claim to be.
 */

const SECRET = 'e2e-processing-secret-0123456789';
const statusLinkOf = (id: string) => `</uploads/${id}>; rel="status"`;

/** The start of an MP4 (an ISO BMFF `ftyp` box, brand isom). */
const MP4_HEADER = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom', 'latin1'), Buffer.from([0, 0, 2, 0]), Buffer.from('isomiso2', 'latin1')]);
/** A Windows PE executable starts with the DOS header's "MZ". */
const PE_HEADER = Buffer.concat([Buffer.from('MZ', 'latin1'), Buffer.from([0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00])]);
/** A 64-bit little-endian ELF executable. */
const ELF_HEADER = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00]);

/** `header` followed by deterministic random bytes, `size` in all; returns its sha256. */
async function makeFileWithHeader(dir: string, name: string, header: Buffer, size: number): Promise<TestFile> {
  const file = path.join(dir, name);
  const source = new ByteSource(name);
  const hash = createHash('sha256');
  const handle = await fsp.open(file, 'w');
  try {
    for (let offset = 0; offset < size; offset += MiB) {
      const piece = source.bytes(offset, Math.min(MiB, size - offset));
      if (offset === 0) header.copy(piece, 0, 0, Math.min(header.length, piece.length));
      hash.update(piece);
      await handle.write(piece, 0, piece.length, offset);
    }
  } finally {
    await handle.close();
  }
  return { path: file, size, sha256: hash.digest('hex'), seed: name };
}

/** Bounded upload of a file with tus-js-client; `onSuccess` runs synchronously when the final response arrives. */
function upload(server: ServerProcess, file: TestFile, options: Parameters<typeof startClientUpload>[1] = {}, timeoutMs = 120_000) {
  return startClientUpload(fs.createReadStream(file.path), { endpoint: server.endpoint, chunkSize: 8 * MiB, ...options }, timeoutMs);
}

/** SIGKILL (a frozen process too) and wait, bounded, until it is gone. */
async function killHard(server: ServerProcess): Promise<void> {
  server.kill('SIGKILL');
  const exit = await withTimeout(server.exited, 10_000, 'the killed server to exit');
  expect(exit.signal).toBe('SIGKILL');
}

function expectProcessed(status: UploadStatus, file: TestFile): void {
  expect(status.state, JSON.stringify(status)).toBe('done');
  expect(status.error).toBeNull();
  expect(status.offset).toBe(file.size);
  expect(status.length).toBe(file.size);
  expect(status.processors.size).toMatchObject({ ok: true, result: { declared: file.size, stored: file.size } });
  expect(status.processors.sha256).toMatchObject({ ok: true, result: { sha256: file.sha256, bytes: file.size } });
}

// The processors read the stored bytes back through the storage: on S3, from the bucket.
describe.each(STORE_KINDS)('[%s] the status resource', (kind) => {
  const scope = new Scope();
  let receiver: WebhookReceiver;
  let server: ServerProcess;
  let video: TestFile;

  beforeAll(async () => {
    const dir = await scope.tempDir();
    video = await makeFileWithHeader(dir, 'clip.mp4', MP4_HEADER, 12 * MiB + 345);
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    const store = await createTestStore(kind, scope);
    // Its "video" is an MP4 header and random bytes: the media step (e2e/media.test.ts) would rightly reject it.
    server = await scope.server(store.startOptions({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT: '60s', ALLOWED_TYPES: 'video/*', PROCESSORS: 'size,sha256,type' }));
  });
  afterEach(() => receiver.resetScripts());
  afterAll(() => scope.dispose());

  it('goes processing → done after the last byte; its events say so; the final PATCH links to it', async () => {
    // pre-finish is held: the last byte is stored, processing is not queued yet, the client waits.
    receiver.script('pre-finish', { hold: true });
    let link: string | null | undefined;
    const run = upload(server, video, {
      metadata: { filename: 'clip.mp4', filetype: 'video/mp4' },
      onSuccess: ({ lastResponse }) => {
        link = lastResponse.getHeader('Link');
      },
    });
    const preFinish = await receiver.waitFor((all) => all.find((d) => d.type === 'pre-finish'), 'the pre-finish hook', 60_000);
    const id = preFinish.uploadId ?? '';

    // Every byte is stored: the status says processing (nothing recorded yet) and the events start there.
    const before = await getStatus(server.url, id);
    expect(before.status).toBe(200);
    expect(before.headers.get('cache-control')).toBe('no-store');
    expect(before.body).toMatchObject({ id, state: 'processing', offset: video.size, length: video.size, processors: {}, error: null, uploadUrl: `/files/${id}` });
    expect(before.body?.metadata).toEqual({ filename: 'clip.mp4', filetype: 'video/mp4' });
    const events = await EventStreamClient.open(`${server.url}/uploads/${id}/events`);
    scope.defer(() => events.close());
    expect(events.status).toBe(200);
    expect(events.contentType).toMatch(/^text\/event-stream/);
    const [first] = await events.waitForStatuses(1);
    expect(first?.state).toBe('processing');

    receiver.releaseHeld();
    const url = await run.done;
    expect(uploadIdOf(url)).toBe(id);
    expect(link).toBe(statusLinkOf(id));

    // The server ends the stream once the upload settles; the last event is the final status.
    await events.waitForEnd();
    const states = events.statuses().map((s) => s.state);
    expect(states[0]).toBe('processing');
    expect(states.at(-1)).toBe('done');
    expect(new Set(states)).toEqual(new Set(['processing', 'done']));
    // States never go back: processing... then done, once.
    expect(states.indexOf('done')).toBe(states.length - 1);

    // Polled the way a client without SSE would (bounded), through the link the PATCH gave.
    const status = await waitForState(server.url, id);
    expect(events.statuses().at(-1)).toEqual(status);
    expectProcessed(status, video);
    expect(status.processors.type).toMatchObject({ ok: true, result: { detected: 'video/mp4', declared: 'video/mp4', matchesDeclared: true } });
    const linked = await fetchWithin(new URL(`/uploads/${id}`, server.url).toString());
    expect(await linked.json()).toEqual(status);

    // HEAD on the finished upload carries the link too, and the post-process hook tells the outcome.
    const headed = await head(url);
    expect(headed.headers.get('link')).toBe(statusLinkOf(id));
    const announced = await receiver.waitForDelivered(id, 'post-process', 30_000);
    expect(announced.payload.processing).toMatchObject({ state: 'done', error: null, results: { sha256: { sha256: video.sha256 }, type: { detected: 'video/mp4' } } });

    // Events of a settled upload: one event, then the end.
    const late = await EventStreamClient.open(`${server.url}/uploads/${id}/events`);
    scope.defer(() => late.close());
    await late.waitForEnd();
    expect(late.statuses().map((s) => s.state)).toEqual(['done']);
  });

  it('says uploading (with the offset) until the last byte, and 404 for unknown or malformed ids', async () => {
    const url = await createUpload(server.endpoint, { length: 100, metadata: { filename: 'x.mp4', filetype: 'video/mp4' } });
    const id = uploadIdOf(url);
    const response = await fetchWithin(url, { method: 'PATCH', headers: { ...TUS, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0' }, body: MP4_HEADER });
    expect(response.status).toBe(204);
    expect(response.headers.get('link')).toBeNull();
    const status = await getStatus(server.url, id);
    expect(status.body).toMatchObject({ id, state: 'uploading', offset: MP4_HEADER.length, length: 100, processors: {} });
    expect((await head(url)).headers.get('link')).toBeNull();

    for (const unknown of ['0123456789abcdef0123456789abcdef', '..%2F..%2Fetc%2Fpasswd', 'a'.repeat(200)]) {
      const missing = await getStatus(server.url, unknown);
      expect(missing.status, unknown).toBe(404);
      expect(missing.text).toMatch(/^ERR_UPLOAD_NOT_FOUND: /);
    }
  });
});

describe('the finish path fails once with a 5xx (tus-js-client#557)', () => {
  const scope = new Scope();
  let receiver: WebhookReceiver;
  let server: ServerProcess;
  let file: TestFile;

  beforeAll(async () => {
    const dir = await scope.tempDir();
    file = await makeFile(dir, 'report.bin', 10 * MiB + 7, 'processing-557');
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    server = await scope.server({ env: { HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET } });
  });
  afterEach(() => receiver.resetScripts());
  afterAll(() => scope.dispose());

  it('the client retries, HEAD says complete, it reports success, and processing still ends done', async () => {
    // The receiver answers the first pre-finish of each upload with 500: the final PATCH gets a 5xx.
    receiver.script('pre-finish', { failFirst: 1 });
    const exchanges: string[] = [];
    const run = upload(server, file, {
      chunkSize: 4 * MiB,
      retryDelays: [0, 200, 500, 1000],
      metadata: { filename: 'report.bin' },
      onAfterResponse: (req, res) => {
        exchanges.push(`${req.getMethod()} ${res.getStatus()}`);
      },
    });
    const url = await run.done;
    const id = uploadIdOf(url);

    // PATCH, PATCH, the final PATCH answered 502; then the retry: HEAD, complete, success. No second final PATCH.
    expect(exchanges).toEqual(['POST 201', 'PATCH 204', 'PATCH 204', 'PATCH 502', 'HEAD 200']);
    const preFinish = receiver.forUpload(id, 'pre-finish');
    expect(preFinish.map((d) => d.answeredStatus)).toEqual([500]);

    const status = await waitForState(server.url, id);
    expectProcessed(status, file);
    expect(status.processors.type).toMatchObject({ ok: true, result: { detected: null } });
    const announced = await receiver.waitForDelivered(id, 'post-process', 30_000);
    expect(announced.payload.processing).toMatchObject({ state: 'done', results: { sha256: { sha256: file.sha256 } } });
    expect(receiver.forUpload(id, 'post-process').every((d) => d.payload.processing?.state === 'done')).toBe(true);
    const got = await download(url);
    expect(got.sha256).toBe(file.sha256);
  });

  it('a client that gives up after the 5xx and never asks again still gets its upload processed', async () => {
    receiver.script('pre-finish', { failFirst: 1 });
    const run = upload(server, file, { chunkSize: 4 * MiB, retryDelays: [], metadata: { filename: 'abandoned.bin' } });
    const error = await run.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    const uploadUrl = run.upload.url;
    expect(error).toBeInstanceOf(DetailedError);
    expect((error as DetailedError).originalResponse?.getStatus()).toBe(502);
    expect((error as DetailedError).originalResponse?.getBody()).toMatch(/^ERR_HOOK_FAILED: /);
    expect(uploadUrl).toBeTruthy();
    const id = uploadIdOf(uploadUrl ?? '');

    // No HEAD, no retry: the job was queued before the 502 went out.
    const status = await waitForState(server.url, id);
    expectProcessed(status, file);
  });
});

describe('SIGKILL around processing', () => {
  const fileScope = new Scope();
  const scope = new Scope();
  let big: TestFile;

  beforeAll(async () => {
    const dir = await fileScope.tempDir();
    big = await makeFile(dir, 'big-256mib.bin', 256 * MiB, 'processing-kill-256');
  });
  afterEach(() => scope.dispose());
  afterAll(() => fileScope.dispose());

  /** A server on `storageDir` that the test may freeze: cleanup thaws it first, so stop() can work. */
  async function frozenCapableServer(storageDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
    const server = await scope.server({ storageDir, env });
    scope.defer(() => thaw(server.pid));
    return server;
  }

  it('killed in the middle of the sha256 of a 256 MiB upload: after a restart processing resumes after the recorded step and ends done', async () => {
    const storageDir = await scope.tempDir('tus-e2e-processing-kill-');
    const first = await frozenCapableServer(storageDir);
    let frozenOnResponse = false;
    const run = upload(first, big, {
      chunkSize: 32 * MiB,
      metadata: { filename: 'big.bin' },
      onSuccess: () => {
        // The final 204 is here: freeze the server before processing gets far.
        first.kill('SIGSTOP');
        frozenOnResponse = true;
      },
    });
    const url = await run.done;
    expect(frozenOnResponse).toBe(true);
    const id = uploadIdOf(url);
    await freeze(first.pid);

    // Step the frozen server a few ms at a time until the size step is recorded. sha256 of
    // 256 MiB takes far longer than a step, so we land between the two, every time.
    const { value: atKill } = await stepUntil(first.pid, async () => {
      const record = await readStatusFile(storageDir, id);
      if (record?.processors.sha256) throw new Error(`sha256 was recorded before the server could be caught: ${JSON.stringify(record)}`);
      return record?.processors.size?.ok ? record : undefined;
    });
    await killHard(first);
    expect(atKill.state).toBe('processing');
    expect(atKill.processors.sha256).toBeUndefined();
    expect(await processingJobState(storageDir, id)).toBe('pending');

    const second = await scope.server({ storageDir });
    const status = await waitForState(second.url, id, undefined, 90_000);
    expectProcessed(status, big);
    // The size step was not run again: its record is the one from before the kill.
    expect(status.processors.size?.at).toBe(atKill.processors.size?.at);
    await waitForJobState(storageDir, id, 'done');
    expect(second.logs().some((line) => line.msg === 'upload processed' && line.uploadId === id)).toBe(true);
  });

  it('killed the moment the final PATCH is answered: the job was already durable and runs after the restart', async () => {
    const storageDir = await scope.tempDir('tus-e2e-processing-kill-');
    const first = await frozenCapableServer(storageDir);
    const run = upload(first, big, {
      chunkSize: 32 * MiB,
      onSuccess: () => first.kill('SIGSTOP'),
    });
    const url = await run.done;
    const id = uploadIdOf(url);
    await freeze(first.pid);
    const atKill: StatusFile | undefined = await readStatusFile(storageDir, id);
    await killHard(first);
    // Not processed yet (the sha256 of 256 MiB alone takes longer than the freeze), but queued.
    expect(atKill?.state ?? 'none').not.toBe('done');
    expect(atKill?.processors.sha256).toBeUndefined();
    expect(await processingJobState(storageDir, id)).toBe('pending');

    const second = await scope.server({ storageDir });
    const status = await waitForState(second.url, id, undefined, 90_000);
    expectProcessed(status, big);
  });
});

/** The listing of uploads at startup (on S3, of .info objects under S3_PREFIX) finds what was never queued. */
describe.each(STORE_KINDS)('[%s] SIGKILL before processing was queued', (kind) => {
  const fileScope = new Scope();
  const scope = new Scope();
  let small: TestFile;

  beforeAll(async () => {
    const dir = await fileScope.tempDir();
    small = await makeFile(dir, 'small.bin', 3 * MiB + 11, 'processing-kill-small');
  });
  afterEach(() => scope.dispose());
  afterAll(() => fileScope.dispose());

  it('killed after the last byte was stored but before processing was queued: the startup sweep finds it', async () => {
    const receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    receiver.script('pre-finish', { hold: true });
    const store = await createTestStore(kind, scope);
    const { storageDir } = store;
    const first = await scope.server(store.startOptions({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT: '60s' }));
    const run = upload(first, small, { metadata: { filename: 'small.bin' } });
    // The last PATCH's bytes are stored and pre-finish is waiting: nothing is queued yet.
    const preFinish = await receiver.waitFor((all) => all.find((d) => d.type === 'pre-finish'), 'the pre-finish hook', 60_000);
    const id = preFinish.uploadId ?? '';
    await killHard(first);
    await run.done.catch(() => undefined);
    // Every byte is stored (on S3 the multipart upload is already completed), the queue and status (in STORAGE_DIR) know nothing.
    expect(await store.objectsOf(id)).toEqual(store.finishedObjects(id));
    expect(await store.storedBytes(id)).toBe(small.size);
    expect(await processingJobState(storageDir, id)).toBeUndefined();
    expect(await readStatusFile(storageDir, id)).toBeUndefined();

    const second = await scope.server(store.startOptions());
    const status = await waitForState(second.url, id);
    expectProcessed(status, small);
    expect(second.logs().some((line) => line.msg === 'finished upload without processing found; queued' && line.uploadId === id)).toBe(true);
  });
});

describe.each(STORE_KINDS)('[%s] files that are not what they claim (ALLOWED_TYPES=video/*)', (kind) => {
  const scope = new Scope();
  let dir: string;

  beforeAll(async () => {
    dir = await scope.tempDir();
  });
  afterAll(() => scope.dispose());

  /** A server with a store of its own. */
  async function startServer(env: Record<string, string>): Promise<{ server: ServerProcess; store: TestStore }> {
    const store = await createTestStore(kind, scope);
    return { server: await scope.server(store.startOptions(env)), store };
  }

  it('a Windows executable named movie.mp4 ends rejected, naming the real type; the bytes stay by default but are not served', async () => {
    const { server, store } = await startServer({ ALLOWED_TYPES: 'video/*' });
    const exe = await makeFileWithHeader(dir, 'movie-pe.mp4', PE_HEADER, 4 * MiB + 3);
    const url = await upload(server, exe, { metadata: { filename: 'movie.mp4', filetype: 'video/mp4' } }).done;
    const id = uploadIdOf(url);
    const status = await waitForState(server.url, id);
    expect(status.state).toBe('rejected');
    expect(status.error).toContain('application/x-msdownload');
    expect(status.error).toContain('video/mp4');
    expect(status.processors.type).toMatchObject({ ok: true, result: { detected: 'application/x-msdownload', declared: 'video/mp4', matchesDeclared: false } });
    expect(status.processors.sha256).toMatchObject({ ok: true, result: { sha256: exe.sha256 } });
    // Not served (it would be a way to host anything behind an allowed name), with the reason.
    const refused = await fetchWithin(url);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toMatch(/^ERR_UPLOAD_REJECTED: this upload was rejected and is not served: .*application\/x-msdownload/);
    expect(await store.objectsOf(id)).toEqual(store.finishedObjects(id));
    expect(await store.storedBytes(id)).toBe(exe.size);
  });

  it('with DELETE_REJECTED=true an ELF binary named movie.mp4 is rejected and its bytes are gone; the status stays', async () => {
    const { server, store } = await startServer({ ALLOWED_TYPES: 'video/*', DELETE_REJECTED: 'true' });
    const elf = await makeFileWithHeader(dir, 'movie-elf.mp4', ELF_HEADER, 2 * MiB + 1);
    const url = await upload(server, elf, { metadata: { filename: 'movie.mp4', filetype: 'video/mp4' } }).done;
    const id = uploadIdOf(url);
    const status = await waitForState(server.url, id);
    expect(status.state).toBe('rejected');
    expect(status.error).toContain('application/x-elf');
    expect(status.offset).toBeNull();
    expect(status.processors.type).toMatchObject({ result: { detected: 'application/x-elf' } });

    const got = await fetchWithin(url);
    expect(got.status).toBe(404);
    expect(await got.text()).toMatch(/^ERR_UPLOAD_NOT_FOUND: /);
    expect((await head(url)).status).toBe(404);
    // Nothing is left of a finished upload either (on S3: the object, <id>.info, no <id>.part).
    expect(await store.objectsOf(id)).toEqual([]);
    // Asked again later, the status still answers.
    expect((await getStatus(server.url, id)).body).toMatchObject({ id, state: 'rejected', error: status.error });
  });

  it('a real MP4 passes the same server', async () => {
    // An MP4 header over random bytes: its type is right, but it does not probe (media would reject it; e2e/media.test.ts covers that).
    const { server } = await startServer({ ALLOWED_TYPES: 'video/*', DELETE_REJECTED: 'true', PROCESSORS: 'size,sha256,type' });
    const mp4 = await makeFileWithHeader(dir, 'real.mp4', MP4_HEADER, 1 * MiB + 5 * KiB);
    const url = await upload(server, mp4, { metadata: { filename: 'real.mp4', filetype: 'video/mp4' } }).done;
    const status = await waitForState(server.url, uploadIdOf(url));
    expectProcessed(status, mp4);
    expect(status.processors.type).toMatchObject({ result: { detected: 'video/mp4', matchesDeclared: true } });
  });
});

describe('processing that keeps failing (PROCESSING_MAX_ATTEMPTS)', () => {
  const scope = new Scope();
  afterAll(() => scope.dispose());

  it('ends failed with the reason after the configured attempts, and post-process says so', async () => {
    const receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    const server = await scope.server({
      env: { HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_TIMEOUT: '60s', PROCESSING_MAX_ATTEMPTS: '3', PROCESSING_RETRY_DELAY: '50ms' },
    });
    const dir = await scope.tempDir();
    const file = await makeFile(dir, 'shrinks.bin', 1 * MiB, 'processing-shrinks');
    // While pre-finish holds the finish path, the stored file loses half its bytes (a disk
    // that lies): every processing attempt finds fewer bytes stored than declared.
    receiver.script('pre-finish', { hold: true });
    const run = upload(server, file);
    const preFinish = await receiver.waitFor((all) => all.find((d) => d.type === 'pre-finish'), 'the pre-finish hook', 60_000);
    const id = preFinish.uploadId ?? '';
    await fsp.truncate(path.join(server.storageDir, id), file.size / 2);
    receiver.releaseHeld();
    await run.done;

    const status = await waitForState(server.url, id, undefined, 30_000);
    expect(status.state).toBe('failed');
    // The size step looks at the bytes on disk, not at what the server remembers writing.
    expect(status.error).toBe(`processing failed after 3 attempts: stored ${file.size / 2} bytes but the upload declared ${file.size}`);
    const announced = await receiver.waitForDelivered(id, 'post-process', 30_000);
    expect(announced.payload.processing).toMatchObject({ state: 'failed', error: status.error });
    const retries = server.logs().filter((line) => line.msg === 'job failed; retrying' && line.job === `process:${id}`);
    expect(retries.map((line) => line.attempts)).toEqual([1, 2]);
    await waitForJobState(server.storageDir, id, 'dead');
  });
});
