import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { makeFile, MiB, type TestFile } from '../support/files.js';
import { bytesReceived, findFreePort, Scope, sleep, type ServerProcess } from '../support/server-process.js';
import { uploadIdOf } from '../support/status.js';
import { download } from '../support/tus.js';
import { Contexts, launchChromium, openDemo, rowOf, seenStates, throttleUploads, waitForProgress, waitForRowState } from './browser.js';

/** 4 MiB/s: a 32 MiB upload takes about 8 s, so each interruption lands mid-upload. */
const UPLOAD_RATE = 4 * MiB;
const SIZE = 32 * MiB;

/** The row's download link, fetched: the server holds exactly the source's bytes. */
async function expectByteIdentical(page: Parameters<typeof rowOf>[0], file: TestFile): Promise<string> {
  const name = file.path.split('/').pop() ?? '';
  const row = rowOf(page, name);
  expect(await row.locator('.sha256').innerText()).toBe(file.sha256);
  const link = (await row.getByRole('link', { name: `Download ${name}` }).getAttribute('href')) ?? '';
  const got = await download(link);
  expect(got.status).toBe(200);
  expect(got.bytes).toBe(file.size);
  expect(got.sha256).toBe(file.sha256);
  return link;
}

/** The page resumes by itself after the network or the server goes away, and after a reload. */
describe('the browser demo through interruptions', () => {
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

  it('goes offline mid-upload: says it is retrying, then back online, and completes byte-identical', async () => {
    const server = await scope.server();
    const file = await makeFile(dir, 'offline.bin', SIZE, 'browser-offline');
    const { page, record } = await openDemo(await contexts.new(), server.url);
    const network = await throttleUploads(page, UPLOAD_RATE);

    await page.setInputFiles('#files', file.path);
    await waitForProgress(page, 'offline.bin', 0.3 * SIZE, 30_000);
    await network.setOffline(true);
    await waitForRowState(page, 'offline.bin', ['retrying'], 10_000);
    await expect.poll(() => page.locator('#network').innerText()).toContain('You are offline');
    // Long enough for several failed attempts while offline.
    await sleep(2_500);
    expect(await rowOf(page, 'offline.bin').getAttribute('data-state')).toBe('retrying');
    await network.setOffline(false);

    await waitForRowState(page, 'offline.bin', ['done'], 60_000);
    const states = await seenStates(page, 'offline.bin');
    expect(states).toContainEqual(expect.stringMatching(/^You are offline\. Retrying… \(attempt \d+\)$/));
    expect(states).toContain('Back online, resuming…');
    expect(states.at(-1)).toBe('Done');
    const link = await expectByteIdentical(page, file);

    // One upload, resumed: no second POST, and the server got little more than the file.
    const id = uploadIdOf(link);
    const logs = server.logs().filter((line) => line.msg === 'request');
    expect(logs.filter((line) => line.method === 'POST')).toHaveLength(1);
    const received = bytesReceived(server, id);
    expect(received).toBeGreaterThanOrEqual(file.size);
    expect(received).toBeLessThan(1.2 * file.size);
    expect(record.errors).toEqual([]);
  });

  it('keeps retrying while the server is killed and restarted on the same port, then completes byte-identical', async () => {
    const port = await findFreePort();
    const storageDir = await scope.tempDir('tus-browser-storage-');
    const options = { storageDir, env: { PORT: String(port) } };
    const first = await scope.server(options);
    const file = await makeFile(dir, 'restart.bin', SIZE, 'browser-restart');
    const { page, record } = await openDemo(await contexts.new(), first.url);
    await throttleUploads(page, UPLOAD_RATE);

    await page.setInputFiles('#files', file.path);
    await waitForProgress(page, 'restart.bin', 0.3 * SIZE, 30_000);
    first.kill('SIGKILL');
    await first.exited;
    await waitForRowState(page, 'restart.bin', ['retrying'], 15_000);
    // Down for a few retries.
    await sleep(2_000);
    expect(await rowOf(page, 'restart.bin').getAttribute('data-state')).toBe('retrying');
    const second: ServerProcess = await scope.server(options);
    expect(second.url).toBe(first.url);

    await waitForRowState(page, 'restart.bin', ['done'], 90_000);
    const states = await seenStates(page, 'restart.bin');
    expect(states).toContainEqual(expect.stringMatching(/^Connection lost\. Retrying… \(attempt \d+\)$/));
    expect(states).toContain('Back online, resuming…');
    await expectByteIdentical(page, file);
    // The restarted server took the rest with PATCH after a HEAD, not a new upload.
    const logs = second.logs().filter((line) => line.msg === 'request');
    expect(logs.map((line) => line.method)).not.toContain('POST');
    expect(logs.map((line) => line.method)).toContain('HEAD');
    expect(record.errors).toEqual([]);
  });

  it('after a reload mid-upload, the same file picked again resumes from the server offset (< 1.2x the size received)', async (ctx) => {
    const server = await scope.server();
    const file = await makeFile(dir, 'reload.bin', SIZE, 'browser-reload');
    const { page, record } = await openDemo(await contexts.new(), server.url);
    await throttleUploads(page, UPLOAD_RATE);

    await page.setInputFiles('#files', file.path);
    await waitForProgress(page, 'reload.bin', 0.4 * SIZE, 30_000);
    await page.reload();
    await page.locator('#limit').filter({ hasText: /Up to/ }).waitFor({ timeout: 15_000 });
    expect(await page.locator('li.upload').count()).toBe(0);

    await page.setInputFiles('#files', file.path);
    await waitForRowState(page, 'reload.bin', ['done'], 60_000);
    const link = await expectByteIdentical(page, file);
    expect(await seenStates(page, 'reload.bin')).toContain('Resuming where it stopped…');

    const id = uploadIdOf(link);
    const logs = server.logs().filter((line) => line.msg === 'request');
    expect(logs.filter((line) => line.method === 'POST')).toHaveLength(1);
    const patches = logs.filter((line) => line.method === 'PATCH' && line.uploadId === id);
    const received = patches.reduce((sum, line) => sum + Number(line.bytesIn ?? 0), 0);
    const report = `server received ${received} bytes (${patches.map((line) => Number(line.bytesIn ?? 0)).join(' + ')}) in ${patches.length} PATCH requests for a ${file.size}-byte file (${(received / file.size).toFixed(3)}x)`;
    ctx.annotate(report);
    process.stdout.write(`[reload test] ${report}\n`);
    expect(patches.length).toBeGreaterThanOrEqual(2);
    expect(received).toBeLessThan(1.2 * file.size);
    expect(record.errors).toEqual([]);
  });
});
