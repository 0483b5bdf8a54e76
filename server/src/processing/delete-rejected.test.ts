import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Env } from '../config.js';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createFinishedUpload, headUpload, patchUpload, TUS } from '../testing/http-test-helpers.js';

/**
 * DELETE_REJECTED through the whole app, on both stores: the upload processing rejects is
 * removed by the core's removal (under the upload's lock), so the tus resource is gone for
 * every method while the status resource keeps the rejection.
 */

const s3 = inject('s3');

const STORES: ReadonlyArray<readonly [string, () => Env]> = [
  ['file', () => ({})],
  ['s3', () => s3ServerEnv(s3, { S3_PART_SIZE: '5MiB', S3_PREFIX: `delete-rejected-${randomBytes(4).toString('hex')}/` })],
];

/** A Windows executable, declared as a video: the type step rejects it. */
const EXE = Buffer.concat([Buffer.from('MZ', 'latin1'), Buffer.alloc(2000, 9)]);

describe.each(STORES)('DELETE_REJECTED (%s storage)', (_kind, env) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ ...env(), ALLOWED_TYPES: 'video/*', DELETE_REJECTED: 'true' });
  });

  afterAll(async () => {
    await t?.cleanup();
  });

  it('removes the rejected upload: HEAD, GET, PATCH and DELETE answer 404 afterwards; the status says rejected', async () => {
    const { id, path } = await createFinishedUpload(t.app, EXE, { filename: 'movie.mp4', filetype: 'video/mp4' });
    // Not processed yet (the queue is not started): the upload is there.
    const before = await headUpload(t.app, path);
    expect(before.status).toBe(200);
    expect(before.headers.get('upload-offset')).toBe(String(EXE.length));

    await t.startBackground();
    await t.state.queue.idle();

    const head = await headUpload(t.app, path);
    expect(head.status).toBe(404);
    expect(head.headers.get('tus-resumable')).toBe('1.0.0');
    expect(head.headers.get('cache-control')).toBe('no-store');
    expect((await t.app.request(path, { headers: TUS })).status).toBe(404);
    expect((await patchUpload(t.app, path, EXE.length, '')).status).toBe(404);
    expect((await t.app.request(path, { method: 'DELETE', headers: TUS })).status).toBe(404);

    const status = await t.app.request(`/uploads/${id}`);
    expect(status.status).toBe(200);
    const body = (await status.json()) as { state?: string; error?: string };
    expect(body.state).toBe('rejected');
    expect(body.error).toContain('application/x-msdownload');
  });
});
