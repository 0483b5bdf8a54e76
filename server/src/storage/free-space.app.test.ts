import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type UploadServerApp } from '../app.js';
import { parseConfig } from '../config.js';
import { createUpload, headUpload, patchUpload, TUS } from '../testing/http-test-helpers.js';
import { createStorage } from './index.js';

/** More than any disk this runs on has free: every measurement is below it. */
const ALWAYS_LOW = '1024TiB';

const apps: UploadServerApp[] = [];
let dir: string | undefined;

afterEach(async () => {
  for (const app of apps.splice(0)) await app.stopBackground();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** An app on `storageDir` with this MIN_FREE_SPACE; several may share a directory, one after the other. */
async function appOn(storageDir: string, minFreeSpace: string): Promise<UploadServerApp> {
  const config = parseConfig({ STORAGE_DIR: storageDir, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', MIN_FREE_SPACE: minFreeSpace });
  const app = createApp(config, { storage: await createStorage(config), logger: pino({ level: 'silent' }) });
  apps.push(app);
  return app;
}

describe('MIN_FREE_SPACE', () => {
  it('refuses a new upload with 507 and Retry-After, stores nothing, and /readyz answers 503', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'free-space-app-'));
    const { app } = await appOn(dir, ALWAYS_LOW);
    const before = await fs.readdir(dir);
    for (const body of [undefined, 'abc']) {
      const headers: Record<string, string> = { Host: 'localhost', ...TUS, 'Upload-Length': '3' };
      if (body) Object.assign(headers, { 'Content-Type': 'application/offset+octet-stream', 'Content-Length': '3' });
      const res = await app.request('http://localhost/files', { method: 'POST', headers, body });
      expect(res.status).toBe(507);
      expect(res.headers.get('retry-after')).toBe('30');
      expect(res.headers.get('tus-resumable')).toBe('1.0.0');
      expect(await res.text()).toMatch(/^ERR_STORAGE_FULL: the server is low on storage \(less than MIN_FREE_SPACE, 1 PiB, free\)/);
    }
    // No data file, no info file.
    expect(await fs.readdir(dir)).toEqual(before);

    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'unavailable', reason: 'STORAGE_DIR has less than MIN_FREE_SPACE (1 PiB) free' });
  });

  it('lets an upload that started before free space ran low finish', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'free-space-app-'));
    const roomy = await appOn(dir, '0');
    const upload = await createUpload(roomy.app, { 'Upload-Length': '6' });
    expect((await patchUpload(roomy.app, upload.path, 0, 'abc')).status).toBe(204);
    await roomy.stopBackground();

    // The same directory, now below the minimum.
    const { app } = await appOn(dir, ALWAYS_LOW);
    const res = await patchUpload(app, upload.path, 3, 'def');
    expect(res.status).toBe(204);
    expect(res.headers.get('upload-offset')).toBe('6');
    expect((await headUpload(app, upload.path)).headers.get('upload-offset')).toBe('6');
  });

  it('0 turns the check off', async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'free-space-app-'));
    const { app } = await appOn(dir, '0');
    expect((await app.request('/readyz')).status).toBe(200);
    await createUpload(app, { 'Upload-Length': '3' });
  });
});
