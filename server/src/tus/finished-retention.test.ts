import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createFinishedUpload, createUpload, headUpload, TUS } from '../testing/http-test-helpers.js';

/** FINISHED_UPLOAD_RETENTION through the app: the sweep removes old finished uploads, which then answer 410 like expired ones. */

const apps: TestApp[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((t) => t.cleanup()));
});

describe('FINISHED_UPLOAD_RETENTION', () => {
  it('a finished upload past the retention is removed by the sweep: HEAD and GET answer 410; an unfinished one stays', async () => {
    const t = await createTestApp({ FINISHED_UPLOAD_RETENTION: '1s' });
    apps.push(t);
    const finished = await createFinishedUpload(t.app, 'keep me a while', { filename: 'a.txt' });
    const unfinished = await createUpload(t.app, { 'Upload-Length': '10' });
    expect(await t.sweeper.sweepOnce()).toBe(0);
    expect((await t.app.request(finished.path)).status).toBe(200);

    await sleep(1_100);
    expect(await t.sweeper.sweepOnce()).toBe(1);
    const head = await headUpload(t.app, finished.path);
    expect(head.status).toBe(410);
    const get = await t.app.request(finished.path, { headers: TUS });
    expect(get.status).toBe(410);
    expect(await get.text()).toMatch(/^ERR_UPLOAD_GONE: /);
    expect((await headUpload(t.app, unfinished.path)).status).toBe(200);
  });

  it('off by default: a finished upload stays', async () => {
    const t = await createTestApp();
    apps.push(t);
    const finished = await createFinishedUpload(t.app, 'forever');
    expect(t.config.tus.finishedRetentionMs).toBe(0);
    expect(await t.sweeper.sweepOnce()).toBe(0);
    expect((await t.app.request(finished.path)).status).toBe(200);
  });
});
