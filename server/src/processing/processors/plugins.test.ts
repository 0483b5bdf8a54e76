import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_PROCESSORS, parseConfig } from '../../config.js';
import type { HookEvent } from '../../hooks/types.js';
import { createTestApp, type TestApp } from '../../testing/create-test-app.js';
import { createFinishedUpload } from '../../testing/http-test-helpers.js';
import { defaultProcessors, processorWarnings, unavailableProcessors } from '../index.js';
import { createStorage } from '../../storage/index.js';
import type { Processor, ProcessorUpload } from './types.js';

/**
 * Processors as plugins: an embedding program's own steps beside the built-in ones (createApp's
 * deps.processors), `wants` choosing uploads, results in the status and the post-process hook;
 * PROCESSORS choosing and ordering the built-ins, media and poster skipped without ffmpeg.
 */

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.cleanup();
});

/** A plugin like the README's: asks "the transcoder" for videos only, recording what it asked. */
function transcodeRequest() {
  const asked: string[] = [];
  const wanted: ProcessorUpload[] = [];
  const processor: Processor<{ jobId: string }> = {
    name: 'transcode',
    wants: (upload) => {
      wanted.push(upload);
      return (upload.metadata.filetype ?? '').startsWith('video/');
    },
    async run({ id, previous }) {
      asked.push(id);
      return { result: { jobId: `job-${id}-${Object.keys(previous).join('+')}` } };
    },
  };
  return { processor, asked, wanted };
}

describe('plugins through createApp', () => {
  it('a plugin runs after the steps before it, for the uploads it wants, and its result reaches the status and the hook', async () => {
    const { processor, asked, wanted } = transcodeRequest();
    const announced: HookEvent[] = [];
    const seen: Processor = { name: 'seen', run: async ({ size }) => ({ result: { size } }) };
    const app = await createTestApp({}, { processors: [seen, processor], hooks: { 'post-process': (event) => void announced.push(event) } });
    apps.push(app);
    const video = await createFinishedUpload(app.app, 'not really a video', { filename: 'a.mp4', filetype: 'video/mp4' });
    const text = await createFinishedUpload(app.app, 'hello', { filename: 'a.txt', filetype: 'text/plain' });
    await app.startBackground();
    await app.state.queue.idle();

    const statusOf = async (id: string) => (await (await app.app.request(`/uploads/${id}`)).json()) as { state: string; processors: Record<string, { ok: boolean; result: unknown }> };
    const videoStatus = await statusOf(video.id);
    expect(videoStatus.state).toBe('done');
    expect(videoStatus.processors.transcode).toMatchObject({ ok: true, result: { jobId: `job-${video.id}-seen` } });
    const textStatus = await statusOf(text.id);
    expect(textStatus.state).toBe('done');
    expect(textStatus.processors.transcode).toMatchObject({ ok: true, result: { skipped: 'not wanted' } });
    // run() was called for the wanted upload only; wants() saw the earlier results and no bytes.
    expect(asked).toEqual([video.id]);
    expect(wanted.find((upload) => upload.id === text.id)).toEqual({ id: text.id, size: 5, metadata: { filename: 'a.txt', filetype: 'text/plain' }, previous: { seen: { size: 5 } } });
    await expect.poll(() => announced.length).toBe(2);
    expect(announced.find((event) => event.upload.id === video.id)?.processing?.results).toEqual({ seen: { size: 18 }, transcode: { jobId: `job-${video.id}-seen` } });
  });
});

describe('PROCESSORS', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-plugins-'));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it('chooses and orders the built-in steps', async () => {
    const config = parseConfig({ PROCESSORS: 'type,size', LOG_LEVEL: 'silent', STORAGE_DIR: dir });
    const storage = await createStorage(config);
    expect(defaultProcessors(config, storage).map((p) => p.name)).toEqual(['type', 'size']);
    const all = parseConfig({ STORAGE_DIR: dir });
    expect(all.processing.processors).toEqual(BUILTIN_PROCESSORS);
  });

  it('refuses unknown and repeated names', () => {
    expect(() => parseConfig({ PROCESSORS: 'size,thumbnail' })).toThrow(/PROCESSORS\.1: expected processors among size, sha256, type, media, poster, got "thumbnail"/);
    expect(() => parseConfig({ PROCESSORS: 'size,size' })).toThrow(/PROCESSORS: expected each processor once/);
  });

  it('media and poster are left out, with a warning each, when ffprobe and ffmpeg are missing', async () => {
    const config = parseConfig({ FFPROBE_PATH: '/nonexistent/ffprobe', FFMPEG_PATH: 'no-such-ffmpeg', STORAGE_DIR: dir });
    expect(unavailableProcessors(config).map((p) => p.name)).toEqual(['media', 'poster']);
    expect(processorWarnings(config)).toEqual([
      "processor media is skipped: ffprobe is not installed (FFPROBE_PATH=/nonexistent/ffprobe); install Debian's ffmpeg package or remove it from PROCESSORS",
      "processor poster is skipped: ffmpeg is not installed (FFMPEG_PATH=no-such-ffmpeg); install Debian's ffmpeg package or remove it from PROCESSORS",
    ]);
    expect(defaultProcessors(config, await createStorage(config)).map((p) => p.name)).toEqual(['size', 'sha256', 'type']);
    // Installed (the test setup installs Debian's ffmpeg): nothing to say.
    expect(processorWarnings(parseConfig({ STORAGE_DIR: dir }))).toEqual([]);
  });
});
