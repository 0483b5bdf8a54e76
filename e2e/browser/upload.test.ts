import fs from 'node:fs/promises';
import path from 'node:path';
import { SignJWT } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { GiB, makeFile, MiB, sha256, type TestFile } from '../support/files.js';
import { Scope, sleep } from '../support/server-process.js';
import { uploadIdOf } from '../support/status.js';
import { download, head } from '../support/tus.js';
import { Contexts, launchChromium, openDemo, rowOf, rowProgress, throttleUploads, waitForProgress, waitForRowState } from './browser.js';

/** The demo page at `/` in real Chromium: a large upload end to end, the size limit, a token. */
describe('the browser demo uploads', () => {
  const scope = new Scope();
  let browser: Browser;
  let dir: string;
  const contexts = new Contexts(() => browser);

  beforeAll(async () => {
    browser = await launchChromium(inject('chromium'));
    scope.defer(() => browser.close());
    dir = await scope.tempDir('tus-browser-');
  });
  afterEach(() => contexts.closeAll());
  afterAll(() => scope.dispose());

  it('uploads a 100 MiB file: the row reaches done with the sha256, and GET returns the same bytes', async () => {
    const server = await scope.server();
    const file = await makeFile(dir, 'holiday-100mib.bin', 100 * MiB, 'browser-100');
    const { page, record } = await openDemo(await contexts.new(), server.url);

    await page.setInputFiles('#files', file.path);
    await waitForRowState(page, 'holiday-100mib.bin', ['done'], 90_000);

    const row = rowOf(page, 'holiday-100mib.bin');
    await expect.poll(() => row.locator('.stat-percent').innerText()).toBe('100%');
    expect(await row.locator('.sha256').innerText()).toBe(file.sha256);
    const link = await row.getByRole('link', { name: 'Download holiday-100mib.bin' }).getAttribute('href');
    expect(link).toMatch(new RegExp(`^${server.url}/files/[0-9a-f]{32}$`));
    const got = await download(link ?? '');
    expect(got.status).toBe(200);
    expect(got.bytes).toBe(file.size);
    expect(got.sha256).toBe(file.sha256);
    expect(record.errors).toEqual([]);
  });

  it('takes files dropped on the page', async () => {
    const server = await scope.server();
    const { page, record } = await openDemo(await contexts.new(), server.url);
    const dropped = await page.evaluateHandle(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(256 * 1024).fill(7)], 'dropped.bin', { type: 'application/octet-stream' }));
      transfer.items.add(new File(['hello'], 'hello.txt', { type: 'text/plain' }));
      return transfer;
    });
    const zone = page.locator('#drop-zone');
    await zone.dispatchEvent('dragenter', { dataTransfer: dropped });
    await expect.poll(() => zone.getAttribute('class')).toContain('dragging');
    await zone.dispatchEvent('dragover', { dataTransfer: dropped });
    await zone.dispatchEvent('drop', { dataTransfer: dropped });
    await waitForRowState(page, 'dropped.bin', ['done'], 30_000);
    await waitForRowState(page, 'hello.txt', ['done'], 30_000);
    expect(await zone.getAttribute('class')).not.toContain('dragging');
    expect(await rowOf(page, 'hello.txt').locator('.sha256').innerText()).toBe(sha256(Buffer.from('hello')));
    expect(await rowOf(page, 'hello.txt').locator('.type').innerText()).toBe('not recognised from its contents (declared text/plain)');
    expect(record.errors).toEqual([]);
  });

  it('pauses (the server keeps its offset), resumes from there, and Cancel deletes the upload on the server', async () => {
    const server = await scope.server();
    const file = await makeFile(dir, 'paused.bin', 16 * MiB, 'browser-pause');
    const { page, record } = await openDemo(await contexts.new(), server.url);
    await throttleUploads(page, 2 * MiB);
    await page.setInputFiles('#files', file.path);
    await waitForProgress(page, 'paused.bin', 2 * MiB, 30_000);
    const row = rowOf(page, 'paused.bin');

    await row.getByRole('button', { name: 'Pause paused.bin' }).click();
    await waitForRowState(page, 'paused.bin', ['paused'], 5_000);
    expect(await row.locator('.upload-state').innerText()).toBe('Paused: Resume carries on from where it stopped');
    // The cut PATCH is answered and logged: from then on the server's offset holds still.
    const post = await server.waitForLog((line) => line.method === 'POST' && line.status === 201, 'the upload created');
    const id = String(post.uploadId);
    await server.waitForLog((line) => line.method === 'PATCH' && line.uploadId === id, 'the paused PATCH answered');
    const url = `${server.url}/files/${id}`;
    const paused = (await head(url)).offset ?? 0;
    expect(paused).toBeGreaterThan(0);
    await sleep(1_000);
    expect((await head(url)).offset).toBe(paused);

    await row.getByRole('button', { name: 'Resume paused.bin' }).click();
    await waitForProgress(page, 'paused.bin', paused + 1 * MiB, 30_000);
    expect(await rowProgress(page, 'paused.bin')).toBeLessThan(file.size);

    await row.getByRole('button', { name: 'Cancel paused.bin' }).click();
    await waitForRowState(page, 'paused.bin', ['cancelled'], 15_000);
    expect(await row.locator('.upload-state').innerText()).toBe('Cancelled; the server has deleted what it received');
    const deleted = server.logs().filter((line) => line.method === 'DELETE' && line.uploadId === id);
    expect(deleted.map((line) => line.status)).toEqual([204]);
    expect((await head(url)).status).toBe(404);
    // And the page forgot it: picking the file again starts a new upload.
    expect(await page.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith('tus::')))).toEqual([]);
    expect(record.errors).toEqual([]);
  });

  it('refuses a file over the advertised limit before sending a byte, in the words of the issue', async () => {
    const server = await scope.server();
    // 2.4 GiB, sparse: no disk used, and the page must not read it anyway.
    const movie = path.join(dir, 'movie.mp4');
    await fs.writeFile(movie, '');
    await fs.truncate(movie, Math.round(2.4 * GiB));
    const { page, record } = await openDemo(await contexts.new(), server.url);

    await page.setInputFiles('#files', movie);
    await waitForRowState(page, 'movie.mp4', ['refused'], 15_000);
    expect(await rowOf(page, 'movie.mp4').locator('.upload-state').innerText()).toBe('movie.mp4 is 2.4 GB; the limit is 2 GB');
    // Said to screen readers too.
    await expect.poll(() => page.locator('#announcer').innerText()).toContain('movie.mp4 is 2.4 GB; the limit is 2 GB');

    // Nothing was created: the server saw the page's OPTIONS and no POST, then or a moment later.
    await sleep(1_000);
    const methods = server.logs().filter((line) => line.msg === 'request').map((line) => `${String(line.method)} ${String(line.path)}`);
    expect(methods).toContain('OPTIONS /files/');
    expect(methods.filter((line) => !line.startsWith('GET ') && !line.startsWith('OPTIONS '))).toEqual([]);
    expect(record.errors).toEqual([]);
  });

  it('with AUTH_JWT_SECRET: without a token the row says why in words; with one (Retry) it uploads', async () => {
    const secret = 'browser-demo-test-secret-0123456789abcdef';
    const server = await scope.server({ env: { AUTH_JWT_SECRET: secret } });
    const file: TestFile = await makeFile(dir, 'report.pdf', 3 * MiB, 'browser-auth');
    const { page, record } = await openDemo(await contexts.new(), server.url);

    await page.setInputFiles('#files', file.path);
    await waitForRowState(page, 'report.pdf', ['error'], 15_000);
    const row = rowOf(page, 'report.pdf');
    const refusal = await row.locator('.upload-state').innerText();
    expect(refusal).toBe('This server needs a token: send Authorization: Bearer <token>. Enter a token above, then press Retry.');
    expect(refusal).not.toMatch(/\b401\b/);

    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('browser-test').setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(secret));
    await page.getByLabel(/Access token/).fill(token);
    await row.getByRole('button', { name: 'Retry report.pdf' }).click();
    // Done means the status resource answered too: the page sent the token there as well.
    await waitForRowState(page, 'report.pdf', ['done'], 60_000);
    expect(await row.locator('.sha256').innerText()).toBe(file.sha256);

    // The download link is signed by the server (never the token in a URL), so it works as a plain link.
    const link = (await row.getByRole('link', { name: 'Download report.pdf' }).getAttribute('href')) ?? '';
    expect(link).not.toContain(token);
    expect(new URL(link).searchParams.get('access_token')).toBeNull();
    expect(new URL(link).searchParams.get('signature')).toMatch(/^[\w-]+$/);
    const got = await download(link);
    expect(got.status).toBe(200);
    expect(got.sha256).toBe(file.sha256);
    // Without the signature, the server refuses: the link works because of it.
    expect((await download(link.split('?')[0] ?? '')).status).toBe(401);

    const id = uploadIdOf(link);
    const answered = server.logs().filter((line) => line.msg === 'request' && (line.uploadId === id || line.method === 'POST'));
    expect(answered.filter((line) => line.method === 'POST').map((line) => line.status)).toEqual([401, 201]);
    expect(record.errors).toEqual([]);
  });
});
