import { afterEach, describe, expect, it } from 'vitest';
import type { Env } from '../config.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createFinishedUpload, TUS } from '../testing/http-test-helpers.js';

/**
 * An upload processing rejected (its real type is not allowed) is not served: GET answers 403
 * with the reason, ranges included, while HEAD and the status resource still describe it.
 * SERVE_REJECTED=true serves it as before.
 */

/** A Windows executable, declared as a video: the type step rejects it. */
const EXE = Buffer.concat([Buffer.from('MZ', 'latin1'), Buffer.alloc(2000, 9)]);

const apps: TestApp[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((t) => t.cleanup()));
});

async function rejectedUpload(env: Env): Promise<{ t: TestApp; id: string; path: string }> {
  const t = await createTestApp({ ALLOWED_TYPES: 'video/*', ...env });
  apps.push(t);
  const { id, path } = await createFinishedUpload(t.app, EXE, { filename: 'movie.mp4', filetype: 'video/mp4' });
  await t.startBackground();
  await t.state.queue.idle();
  const status = (await (await t.app.request(`/uploads/${id}`)).json()) as { state?: string };
  expect(status.state).toBe('rejected');
  return { t, id, path };
}

describe('GET of a rejected upload', () => {
  it('answers 403 ERR_UPLOAD_REJECTED with the reason, for the whole file and for a range', async () => {
    const { t, path } = await rejectedUpload({});
    for (const headers of [{}, { Range: 'bytes=0-1' }] as Record<string, string>[]) {
      const res = await t.app.request(path, { headers });
      expect(res.status).toBe(403);
      expect(res.headers.get('tus-resumable')).toBe('1.0.0');
      const body = await res.text();
      expect(body).toMatch(/^ERR_UPLOAD_REJECTED: this upload was rejected and is not served: /);
      expect(body).toContain('application/x-msdownload');
      expect(body).not.toContain('MZ');
    }
    // The upload itself is still there (DELETE_REJECTED is off): HEAD sees it.
    const head = await t.app.request(path, { method: 'HEAD', headers: TUS });
    expect(head.status).toBe(200);
    expect(head.headers.get('upload-offset')).toBe(String(EXE.length));
  });

  it('SERVE_REJECTED=true serves it', async () => {
    const { t, path } = await rejectedUpload({ SERVE_REJECTED: 'true' });
    const res = await t.app.request(path);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(EXE)).toBe(true);
  });

  it('an accepted upload is served as before', async () => {
    const t = await createTestApp({ ALLOWED_TYPES: 'text/*' });
    apps.push(t);
    const { path } = await createFinishedUpload(t.app, 'plain text', { filename: 'a.txt', filetype: 'text/plain' });
    await t.startBackground();
    await t.state.queue.idle();
    const res = await t.app.request(path);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('plain text');
  });
});
