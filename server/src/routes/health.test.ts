import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, TUS } from '../testing/http-test-helpers.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

let t: TestApp;

beforeEach(async () => {
  t = await createTestApp();
});

afterEach(async () => {
  // Undo whatever a test did to the directory so cleanup can remove it.
  await fs.chmod(t.storageDir, 0o700).catch(() => undefined);
  await t.cleanup();
});

describe('/healthz', () => {
  it('answers 200 while the process runs', async () => {
    const res = await t.app.request('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('still answers 200 while draining', async () => {
    t.lifecycle.beginShutdown();
    expect((await t.app.request('/healthz')).status).toBe(200);
  });
});

describe('/readyz', () => {
  it('answers 200 when storage is writable', async () => {
    const res = await t.app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', storage: 'file' });
    // The probe leaves nothing behind.
    const leftovers = [...(await fs.readdir(t.storageDir)), ...(await fs.readdir(path.join(t.storageDir, '.tmp')))];
    expect(leftovers.filter((name) => name.includes('ready'))).toEqual([]);
  });

  it('answers 503 while draining', async () => {
    t.lifecycle.beginShutdown();
    const res = await t.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'draining' });
  });

  it.skipIf(isRoot)('answers 503 when the storage directory is read-only (chmod 0o500), even after uploads created .tmp', async () => {
    // An upload first, so .tmp exists and stays writable: the probe must test the directory itself.
    await createUpload(t.app, { 'Upload-Length': '3' });
    await fs.chmod(t.storageDir, 0o500);
    const res = await t.app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'unavailable', reason: 'file storage is not writable' });
  });

  it('answers 503 when the storage directory is no longer a directory', async () => {
    // chmod does not stop root from writing, so this check works for every user: swap the
    // directory for a plain file.
    await createUpload(t.app, { 'Upload-Length': '3' });
    await fs.rm(t.storageDir, { recursive: true, force: true });
    await fs.writeFile(t.storageDir, 'not a directory');
    const res = await t.app.request('/readyz');
    expect(res.status).toBe(503);
    const body = (await res.json()) as Record<string, string>;
    expect(body.status).toBe('unavailable');
    // No internal path or error text reaches the client.
    expect(JSON.stringify(body)).not.toContain(t.storageDir);
    expect(JSON.stringify(body)).not.toMatch(/ENOTDIR|EEXIST|EACCES/);
    // And becomes ready again once the directory is back.
    await fs.rm(t.storageDir, { force: true });
    await fs.mkdir(t.storageDir);
    expect((await t.app.request('/readyz')).status).toBe(200);
  });

  it('is not behind the tus version check or the draining gate', async () => {
    const res = await t.app.request('/readyz', { headers: { ...TUS } });
    expect(res.status).toBe(200);
  });
});
