import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scope, type ServerProcess } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { createTestStore, STORE_KINDS, type TestStore } from './support/stores.js';
import { fetchWithin, head, patch, TUS } from './support/tus.js';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook-receiver.js';

const SECRET = 'metadata-test-secret';

/** Bytes that are not UTF-8 (0x80, 0xfe, 0xff, a lone 0xc3) beside ones that are. */
const BINARY = Buffer.from([0x00, 0x01, 0x02, 0x80, 0xfe, 0xff, 0x0d, 0x0a, 0xc3]);
const BINARY_B64 = BINARY.toString('base64');
const TEXT = 'été 🎬.mp4';
const TEXT_B64 = Buffer.from(TEXT, 'utf8').toString('base64');

/** Metadata values are base64 of arbitrary bytes: they come back byte for byte, on every store. */
describe.each(STORE_KINDS)('[%s] upload metadata, exactly as sent', (kind) => {
  const scope = new Scope();
  let store: TestStore;
  let server: ServerProcess;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_RETRY_DELAY: '200ms' }));
    scope.defer(() => receiver.close());
  });
  afterAll(() => scope.dispose());

  async function create(metadataHeader: string | undefined, length = 3): Promise<Response> {
    const headers: Record<string, string> = { ...TUS, 'Upload-Length': String(length) };
    if (metadataHeader !== undefined) headers['Upload-Metadata'] = metadataHeader;
    return fetchWithin(server.endpoint, { method: 'POST', headers });
  }

  it('echoes a binary value, a text value and a key without value in HEAD; hooks and status keep the bytes', async () => {
    const sent = `blob ${BINARY_B64},filename ${TEXT_B64},flag`;
    const created = await create(sent);
    expect(created.status).toBe(201);
    const url = new URL(created.headers.get('location') ?? '', server.endpoint).toString();
    const id = uploadIdOf(url);

    const before = await head(url);
    expect(before.headers.get('upload-metadata')).toBe(sent);

    expect((await patch(url, 0, new Uint8Array([1, 2, 3]))).status).toBe(204);
    const after = await head(url);
    expect(after.headers.get('upload-metadata')).toBe(sent);

    // Hooks: text as text, the binary value as its base64, named in binaryMetadataKeys.
    const delivered = await receiver.waitForDelivered(id, 'post-finish');
    const upload = delivered.payload.upload as typeof delivered.payload.upload & { binaryMetadataKeys?: string[] };
    expect(upload.metadata).toEqual({ blob: BINARY_B64, filename: TEXT, flag: '' });
    expect(upload.binaryMetadataKeys).toEqual(['blob']);
    expect(Buffer.from(upload.metadata.blob ?? '', 'base64').equals(BINARY)).toBe(true);

    const status = await fetchWithin(`${server.url}/uploads/${id}`);
    const body = (await status.json()) as { metadata: Record<string, string>; binaryMetadataKeys?: string[] };
    expect(body.metadata).toEqual({ blob: BINARY_B64, filename: TEXT, flag: '' });
    expect(body.binaryMetadataKeys).toEqual(['blob']);
  });

  it('keeps no binaryMetadataKeys when every value is text, and no internal key ever shows', async () => {
    const created = await create(`filename ${TEXT_B64}`);
    expect(created.status).toBe(201);
    const url = new URL(created.headers.get('location') ?? '', server.endpoint).toString();
    const id = uploadIdOf(url);
    expect((await head(url)).headers.get('upload-metadata')).toBe(`filename ${TEXT_B64}`);
    const delivered = await receiver.waitForDelivered(id, 'post-create');
    expect(delivered.payload.upload.metadata).toEqual({ filename: TEXT });
    expect('binaryMetadataKeys' in delivered.payload.upload).toBe(false);
  });

  it('refuses a key with a space smuggled in as a value, so internal keys cannot be forged', async () => {
    // "key value extra": three tokens in one pair.
    const created = await create(`filename ${TEXT_B64} ${TEXT_B64}`);
    expect(created.status).toBe(400);
    expect(await created.text()).toMatch(/^ERR_INVALID_UPLOAD_METADATA: /);
  });
});
