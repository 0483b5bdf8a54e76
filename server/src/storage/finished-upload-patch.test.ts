import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Env } from '../config.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { startTestServer } from '../testing/create-test-app.js';
import { buildRequest, OFFSET_STREAM, rawRequest, TUS, type RawResponse } from '../testing/http-test-helpers.js';

/**
 * PATCHes to an upload that is already finished, over a real socket, on both stores. A client
 * that lost the answer to its last request may send it again, or send an empty PATCH at the
 * end: that is a 204 with the final offset. Bytes past the end are a clear 4xx, never a 5xx.
 */

const s3 = inject('s3');

const STORES: ReadonlyArray<readonly [string, () => Env]> = [
  ['file', () => ({})],
  ['s3', () => s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', S3_PREFIX: `finished-patch-${randomBytes(4).toString('hex')}/` })],
];

describe.each(STORES)('PATCH on a finished upload (%s storage)', (_kind, env) => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  /** Upload ids in the order pre-finish saw them. */
  const preFinished: string[] = [];

  beforeAll(async () => {
    server = await startTestServer(env(), {
      hooks: {
        'pre-finish': (event) => {
          preFinished.push(event.upload.id);
        },
      },
    });
  });

  afterAll(async () => {
    await server?.close();
  });

  function send(method: string, target: string, headers: Record<string, string> = {}, body: string | Buffer = ''): Promise<RawResponse> {
    return rawRequest(server.running.port, buildRequest(method, target, headers, body), { head: method === 'HEAD' });
  }

  const patch = (target: string, offset: number, body: string, extra: Record<string, string> = {}) =>
    send('PATCH', target, { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': OFFSET_STREAM, 'Content-Length': String(Buffer.byteLength(body)), ...extra }, body);

  /** A finished upload of `content`, written by one PATCH. */
  async function finishedUpload(content: string): Promise<string> {
    const created = await send('POST', '/files', { ...TUS, 'Upload-Length': String(content.length), 'Content-Length': '0' });
    expect(created.status).toBe(201);
    const target = new URL(created.headers.location ?? '').pathname;
    const written = await patch(target, 0, content);
    expect(written.status, written.body).toBe(204);
    expect(written.headers['upload-offset']).toBe(String(content.length));
    return target;
  }

  async function expectUnchanged(target: string, content: string): Promise<void> {
    const head = await send('HEAD', target, TUS);
    expect(head.status).toBe(200);
    expect(head.headers['upload-offset']).toBe(String(content.length));
    const download = await send('GET', target);
    expect(download.status).toBe(200);
    expect(download.body).toBe(content);
  }

  it('an empty PATCH at the end runs no finish again: pre-finish saw the upload once', async () => {
    const target = await finishedUpload('finish once');
    const id = target.split('/').pop() ?? '';
    for (let i = 0; i < 3; i += 1) expect((await patch(target, 'finish once'.length, '')).status).toBe(204);
    expect(preFinished.filter((seen) => seen === id)).toEqual([id]);
  });

  it('an empty PATCH at the end answers 204 with the final Upload-Offset', async () => {
    const target = await finishedUpload('hello, finished');
    const again = await patch(target, 'hello, finished'.length, '');
    expect(again.status, again.body).toBe(204);
    expect(again.headers['upload-offset']).toBe(String('hello, finished'.length));
    expect(again.headers['tus-resumable']).toBe('1.0.0');
    await expectUnchanged(target, 'hello, finished');
  });

  it('an empty chunked PATCH at the end answers 204 too', async () => {
    const target = await finishedUpload('chunked end');
    const again = await send('PATCH', target, { ...TUS, 'Upload-Offset': String('chunked end'.length), 'Content-Type': OFFSET_STREAM, 'Transfer-Encoding': 'chunked' }, '0\r\n\r\n');
    expect(again.status, again.body).toBe(204);
    expect(again.headers['upload-offset']).toBe(String('chunked end'.length));
    await expectUnchanged(target, 'chunked end');
  });

  it('bytes past the end get a 4xx and change nothing', async () => {
    const target = await finishedUpload('complete');
    const more = await patch(target, 'complete'.length, 'extra');
    expect(more.status, more.body).toBe(413);
    expect(more.body).toMatch(/^ERR_[A-Z_]+: /);
    await expectUnchanged(target, 'complete');
  });

  it('chunked bytes past the end get a 4xx and change nothing', async () => {
    const target = await finishedUpload('complete, chunked');
    const more = await send('PATCH', target, { ...TUS, 'Upload-Offset': String('complete, chunked'.length), 'Content-Type': OFFSET_STREAM, 'Transfer-Encoding': 'chunked' }, '5\r\nextra\r\n0\r\n\r\n');
    expect(more.status, more.body).toBe(413);
    await expectUnchanged(target, 'complete, chunked');
  });

  it('the last chunk sent again (an offset before the end) gets 409 and changes nothing', async () => {
    const target = await finishedUpload('0123456789');
    const resent = await patch(target, 5, '56789');
    expect(resent.status, resent.body).toBe(409);
    await expectUnchanged(target, '0123456789');
  });
});
