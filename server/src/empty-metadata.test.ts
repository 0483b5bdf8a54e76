import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from './testing/create-test-app.js';
import { buildRequest, OFFSET_STREAM, rawRequest, TUS, type RawResponse } from './testing/http-test-helpers.js';

/**
 * An empty or whitespace-only Upload-Metadata header means "no metadata", as with tusd and
 * plain @tus/server: some clients always send the header, empty when there is nothing to say.
 * Over a real socket (Node's parser trims the value) and through app.request() (Headers does).
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
let server: Server;

beforeAll(async () => {
  server = await startTestServer();
});

afterAll(async () => {
  await server?.close();
});

function send(method: string, target: string, headers: Record<string, string> = {}, body: string | Buffer = ''): Promise<RawResponse> {
  return rawRequest(server.running.port, buildRequest(method, target, headers, body), { head: method === 'HEAD' });
}

async function expectNoMetadata(location: string | undefined, offset: number, length: number): Promise<void> {
  expect(location).toBeTruthy();
  const head = await send('HEAD', new URL(location ?? '', 'http://localhost').pathname, TUS);
  expect(head.status).toBe(200);
  expect(head.headers['upload-offset']).toBe(String(offset));
  expect(head.headers['upload-length']).toBe(String(length));
  expect(head.headers['upload-metadata']).toBeUndefined();
}

const BLANK: ReadonlyArray<readonly [string, string]> = [
  ['empty', ''],
  ['spaces', '    '],
  ['tabs and spaces', ' \t \t'],
];

describe.each(BLANK)('an Upload-Metadata header that is %s', (_name, value) => {
  it('creates an upload without metadata (POST)', async () => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '5', 'Upload-Metadata': value, 'Content-Length': '0' });
    expect(res.status, res.body).toBe(201);
    await expectNoMetadata(res.headers.location, 0, 5);
  });

  it('creates an upload without metadata and stores the bytes (creation-with-upload)', async () => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '5', 'Upload-Metadata': value, 'Content-Type': OFFSET_STREAM, 'Content-Length': '3' }, 'abc');
    expect(res.status, res.body).toBe(201);
    expect(res.headers['upload-offset']).toBe('3');
    await expectNoMetadata(res.headers.location, 3, 5);
  });

  it('creates an upload without metadata through app.request()', async () => {
    const res = await server.app.request('http://localhost/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '2', 'Upload-Metadata': value } });
    expect(res.status, await res.clone().text()).toBe(201);
    await expectNoMetadata(res.headers.get('location') ?? undefined, 0, 2);
  });

  it('creates an upload without metadata under X-HTTP-Method-Override', async () => {
    const res = await send('GET', '/files', { ...TUS, 'X-HTTP-Method-Override': 'POST', 'Upload-Length': '4', 'Upload-Metadata': value, 'Content-Length': '0' });
    expect(res.status, res.body).toBe(201);
    await expectNoMetadata(res.headers.location, 0, 4);
  });
});

describe('a malformed Upload-Metadata header', () => {
  it.each([[','], ['key not-base64!'], [' , ']])('%j is still refused with 400', async (value) => {
    const res = await send('POST', '/files', { ...TUS, 'Upload-Length': '5', 'Upload-Metadata': value, 'Content-Length': '0' });
    expect(res.status, res.body).toBe(400);
    expect(res.body).toMatch(/^ERR_INVALID_UPLOAD_METADATA: |^ERR_INVALID_REQUEST: /);
  });
});
