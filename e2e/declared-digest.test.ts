import { createHash, randomBytes } from 'node:crypto';
import type { DetailedError } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KiB } from './support/files.js';
import { Scope, type ServerProcess } from './support/server-process.js';
import { getStatus, uploadIdOf, waitForState } from './support/status.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { download, fetchWithin, head, patch, startClientUpload, TUS } from './support/tus.js';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook-receiver.js';

const SECRET = 'declared-digest-secret';

const digestOf = (data: Buffer) => createHash('sha256').update(data).digest();

/**
 * A client declares the sha256 of the whole file at creation; the real server on every store
 * compares it with the stored bytes when the last one arrives: 460 and `failed` on mismatch,
 * with neither processing nor post-finish.
 */
describe.each(STORE_KINDS)('[%s] declared digest of the whole file', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_RETRY_DELAY: '200ms' }));
  });
  afterAll(() => scope.dispose());

  it('tus-js-client with metadata sha256 (hex) that matches: the upload completes and is processed', async () => {
    const data = randomBytes(700 * KiB);
    const run = startClientUpload(data, { endpoint: server.endpoint, chunkSize: 256 * KiB, metadata: { filename: 'right.bin', sha256: digestOf(data).toString('hex') } });
    const url = await run.done;
    const id = uploadIdOf(url);
    const done = await waitForState(server.url, id);
    expect(done.state).toBe('done');
    expect(done.processors.sha256?.result).toMatchObject({ sha256: digestOf(data).toString('hex') });
    await receiver.waitForDelivered(id, 'post-finish');
    expect((await download(url)).sha256).toBe(digestOf(data).toString('hex'));
  });

  it('tus-js-client with a wrong declared digest: the final PATCH gets 460, the upload is failed, no post-finish', async () => {
    const data = randomBytes(700 * KiB);
    const declared = digestOf(Buffer.concat([data, Buffer.from('!')]));
    const run = startClientUpload(data, { endpoint: server.endpoint, chunkSize: 256 * KiB, metadata: { filename: 'wrong.bin', sha256: declared.toString('base64') } });
    const error = (await run.done.then(
      () => undefined,
      (failure: unknown) => failure,
    )) as DetailedError | undefined;
    expect(error).toBeDefined();
    expect(error?.originalRequest?.getMethod()).toBe('PATCH');
    expect(error?.originalResponse?.getStatus()).toBe(460);
    const message = `the upload's sha-256 is :${digestOf(data).toString('base64')}: but the client declared :${declared.toString('base64')}:`;
    expect(error?.originalResponse?.getBody()).toBe(`ERR_DIGEST_MISMATCH: ${message}\n`);

    const url = run.upload.url ?? '';
    const id = uploadIdOf(url);
    const { body } = await getStatus(server.url, id);
    expect(body).toMatchObject({ state: 'failed', error: message, offset: data.length, length: data.length });
    expect((await head(url)).offset).toBe(data.length);

    // A later upload's post-finish arrives; this one's never does, and its status stays failed.
    const later = randomBytes(10 * KiB);
    const laterUrl = await startClientUpload(later, { endpoint: server.endpoint, metadata: { sha256: digestOf(later).toString('hex') } }).done;
    await receiver.waitForDelivered(uploadIdOf(laterUrl), 'post-finish');
    await waitForState(server.url, uploadIdOf(laterUrl));
    expect(receiver.forUpload(id, 'post-finish')).toEqual([]);
    expect(receiver.forUpload(id, 'post-process')).toEqual([]);
    expect((await getStatus(server.url, id)).body?.state).toBe('failed');
  });

  it('Repr-Digest on an upload whose digest could not stream in (a PATCH out of sequence): the stored bytes are read and checked', async () => {
    const data = randomBytes(300 * KiB);
    const tampered = Buffer.from(data);
    tampered.writeUInt8(tampered.readUInt8(200 * KiB) ^ 0x01, 200 * KiB);
    for (const [declared, expected] of [
      [data, 204],
      [tampered, 460],
    ] as const) {
      const created = await fetchWithin(server.endpoint, {
        method: 'POST',
        headers: { ...TUS, 'Upload-Length': String(data.length), 'Repr-Digest': `sha-512=:${createHash('sha512').update(declared).digest('base64')}:, sha-256=:${digestOf(declared).toString('base64')}:` },
      });
      expect(created.status).toBe(201);
      const url = new URL(created.headers.get('location') ?? '', server.endpoint).toString();
      expect((await patch(url, 0, new Uint8Array(data.subarray(0, 100 * KiB)))).status).toBe(204);
      // A PATCH at the wrong offset: refused, and the running digest of this upload is dropped.
      expect((await patch(url, 150 * KiB, new Uint8Array(data.subarray(150 * KiB, 160 * KiB)))).status).toBe(409);
      const last = await patch(url, 100 * KiB, new Uint8Array(data.subarray(100 * KiB)));
      expect(last.status).toBe(expected);
      const state = await waitForState(server.url, uploadIdOf(url));
      expect(state.state).toBe(expected === 204 ? 'done' : 'failed');
      if (expected === 460) expect(last.text).toBe(`ERR_DIGEST_MISMATCH: the upload's sha-256 is :${digestOf(data).toString('base64')}: but the client declared :${digestOf(tampered).toString('base64')}:\n`);
    }
  });

  it('a malformed Repr-Digest is refused with 400 and leaves nothing stored', async () => {
    const before = await store.list();
    const created = await fetchWithin(server.endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10', 'Repr-Digest': 'sha-256=:AAAA:' } });
    expect(created.status).toBe(400);
    expect(await created.text()).toBe('ERR_INVALID_DIGEST: the sha-256 value of Repr-Digest must be the base64 of 32 bytes\n');
    expect(await store.list()).toEqual(before);
  });
});
