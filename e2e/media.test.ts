import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv } from './services/s3-env.js';
import { pollUntil, Scope, withTimeout, type ServerProcess } from './support/server-process.js';
import { getStatus, readStatusFile, uploadIdOf, waitForState, type UploadStatus } from './support/status.js';
import { createTestStore, S3Inspector, STORE_KINDS, type TestStore } from './support/stores.js';
import { fetchWithin, head, startClientUpload, TUS } from './support/tus.js';
import { startWebhookReceiver } from './support/webhook-receiver.js';

/**
 * The media and poster processors against the real server, real ffprobe/ffmpeg (Debian's
 * ffmpeg, installed by e2e/services/ffmpeg-global-setup.ts) and both stores, on videos made
 * here with ffmpeg's test sources: what is recorded, the poster, files that lie, a SIGKILL
 * during ffprobe, the poster's ownership and expiry, and DELETE_AFTER_PROCESSING.
 */

const run = promisify(execFile);
const POSTER_WIDTH = 160;
const SECRET = 'e2e-media-secret-0123456789abcdef';

type Sample = Readonly<{ name: string; path: string; size: number; filetype: string }>;
/** The status with the link the poster processor adds. */
type WithPoster = UploadStatus & Readonly<{ posterUrl: string | null; downloadUrl: string | null }>;
type MediaStream = Readonly<Record<string, unknown> & { type: string; codec: string | null }>;
type MediaResult = Readonly<{ container?: string; duration?: number | null; bitRate?: number | null; streams?: MediaStream[]; skipped?: string; unreadable?: string; bytesRead?: number }>;
type PosterResult = Readonly<{ artifact?: string; width?: number; height?: number; atSeconds?: number; unavailable?: string; skipped?: string }>;

/** ffmpeg, bounded, making a test file from lavfi sources. */
async function ffmpeg(args: string[]): Promise<void> {
  await run('ffmpeg', ['-v', 'error', '-y', ...args], { timeout: 60_000, killSignal: 'SIGKILL' });
}

const lavfi = (source: string) => ['-f', 'lavfi', '-i', source];
const testVideo = (seconds: number, size = '320x240', rate = 25) => lavfi(`testsrc=duration=${seconds}:size=${size}:rate=${rate}`);
const tone = (seconds: number) => lavfi(`sine=frequency=440:sample_rate=48000:duration=${seconds}`);

/** The files of the issue, made once for the whole module (a few hundred KiB in all). */
async function makeSamples(dir: string): Promise<Record<string, Sample>> {
  const installed = inject('ffmpeg');
  if (!installed?.version) throw new Error(installed?.error ?? 'ffmpeg is not installed: run e2e/services/ffmpeg.sh install');
  const at = (name: string) => path.join(dir, name);
  await ffmpeg([...testVideo(4), ...tone(4), '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k', at('h264.mp4')]);
  await ffmpeg([...testVideo(2, '320x180', 24), ...tone(2), '-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '200k', '-c:a', 'libopus', '-b:a', '48k', at('vp9.webm')]);
  await ffmpeg([...testVideo(2, '352x288', 30), '-c:v', 'mpeg4', '-pix_fmt', 'yuv420p', '-q:v', '5', at('clip.mov')]);
  await ffmpeg([...tone(3), '-ac', '2', '-c:a', 'aac', '-b:a', '64k', at('audio.m4a')]);
  await fsp.writeFile(at('empty.mp4'), '');
  // The first 60% of the MP4: its moov box (written at the end) is gone.
  const whole = await fsp.readFile(at('h264.mp4'));
  await fsp.writeFile(at('truncated.mp4'), whole.subarray(0, Math.floor(whole.length * 0.6)));
  await fsp.writeFile(at('text.mp4'), 'this is not a video, whatever its name says\n'.repeat(200));
  // A Windows executable (the DOS header's "MZ") named and declared as a video.
  await fsp.writeFile(at('setup.mp4'), Buffer.concat([Buffer.from('MZ'), Buffer.from([0x90, 0, 3, 0, 0, 0, 4, 0]), Buffer.alloc(8192, 0x90)]));
  // The same MP4 declaring ~49 days (mvhd duration 0xfffffff0 at timescale 1000): 10% in is far past the end.
  const huge = Buffer.from(whole);
  const mvhd = huge.indexOf('mvhd');
  huge.writeUInt32BE(0xfffffff0, mvhd + 20);
  await fsp.writeFile(at('huge-duration.mp4'), huge);
  const sample = (name: string, filetype: string): Sample => ({ name, path: at(name), size: fs.statSync(at(name)).size, filetype });
  return {
    h264: sample('h264.mp4', 'video/mp4'),
    vp9: sample('vp9.webm', 'video/webm'),
    mov: sample('clip.mov', 'video/quicktime'),
    audio: sample('audio.m4a', 'audio/mp4'),
    empty: sample('empty.mp4', 'video/mp4'),
    truncated: sample('truncated.mp4', 'video/mp4'),
    text: sample('text.mp4', 'video/mp4'),
    exe: sample('setup.mp4', 'video/mp4'),
    huge: sample('huge-duration.mp4', 'video/mp4'),
  };
}

/** Uploads a sample with tus-js-client (bounded); its upload id. */
async function upload(server: ServerProcess, sample: Sample, headers: Record<string, string> = {}): Promise<string> {
  const client = startClientUpload(await fsp.readFile(sample.path), { endpoint: server.endpoint, headers, metadata: { filename: sample.name, filetype: sample.filetype } }, 60_000);
  return uploadIdOf(await client.done);
}

const mediaOf = (status: UploadStatus) => status.processors.media?.result as MediaResult;
const posterOf = (status: UploadStatus) => status.processors.poster?.result as PosterResult;

/** ffprobe on a poster's bytes: codec and size as a decoder sees them. */
async function decodePoster(bytes: Buffer, dir: string): Promise<{ codec: string; width: number; height: number }> {
  const file = path.join(dir, `poster-${Date.now()}-${Math.random().toString(36).slice(2)}.jpg`);
  await fsp.writeFile(file, bytes);
  const { stdout } = await run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', file], { timeout: 20_000 });
  const stream = (JSON.parse(stdout) as { streams: { codec_name: string; width: number; height: number }[] }).streams[0];
  return { codec: stream?.codec_name ?? '', width: stream?.width ?? 0, height: stream?.height ?? 0 };
}

const streamsOfType = (media: MediaResult, type: string) => (media.streams ?? []).filter((s) => s.type === type);

describe.each(STORE_KINDS)('[%s] media and poster processors', (kind) => {
  const scope = new Scope();
  let samples: Record<string, Sample>;
  let dir: string;
  let server: ServerProcess;
  let store: TestStore;

  beforeAll(async () => {
    dir = await scope.tempDir('tus-e2e-media-');
    samples = await makeSamples(dir);
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ POSTER_WIDTH: String(POSTER_WIDTH), MEDIA_TIMEOUT: '20s' }));
  });
  afterAll(() => scope.dispose());

  it('records the facts of H.264/AAC MP4, VP9/Opus WebM, MOV and audio-only files, and a poster of each video', async () => {
    const expected = {
      h264: { container: 'mov,mp4,m4a,3gp,3g2,mj2', duration: 4, video: { codec: 'h264', width: 320, height: 240, frameRate: 25, pixelFormat: 'yuv420p' }, audio: { codec: 'aac', sampleRate: 48000, channels: 1 } },
      vp9: { container: 'matroska,webm', duration: 2, video: { codec: 'vp9', width: 320, height: 180, frameRate: 24, pixelFormat: 'yuv420p' }, audio: { codec: 'opus', sampleRate: 48000, channels: 1 } },
      mov: { container: 'mov,mp4,m4a,3gp,3g2,mj2', duration: 2, video: { codec: 'mpeg4', width: 352, height: 288, frameRate: 30, pixelFormat: 'yuv420p' }, audio: undefined },
      audio: { container: 'mov,mp4,m4a,3gp,3g2,mj2', duration: 3, video: undefined, audio: { codec: 'aac', sampleRate: 48000, channels: 2 } },
    } as const;
    const ids = await Promise.all(Object.keys(expected).map((name) => upload(server, samples[name] as Sample)));
    for (const [index, [name, want]] of Object.entries(expected).entries()) {
      const id = ids[index] as string;
      const status = (await waitForState(server.url, id)) as WithPoster;
      expect(status.state, `${name}: ${JSON.stringify(status)}`).toBe('done');
      const media = mediaOf(status);
      expect(media.container, name).toBe(want.container);
      expect(media.duration, name).toBeCloseTo(want.duration, 0);
      expect(media.bitRate, name).toBeGreaterThan(0);
      const [video] = streamsOfType(media, 'video');
      const [audio] = streamsOfType(media, 'audio');
      if (want.video) expect(video, name).toMatchObject(want.video);
      else expect(video, name).toBeUndefined();
      if (want.audio) expect(audio, name).toMatchObject(want.audio);
      else expect(audio, name).toBeUndefined();

      const poster = posterOf(status);
      if (!want.video) {
        expect(poster, name).toEqual({ skipped: 'not wanted' });
        expect(status.posterUrl, name).toBeNull();
        expect((await fetchWithin(`${server.url}/uploads/${id}/poster`)).status, name).toBe(404);
        continue;
      }
      const height = Math.round((want.video.height * POSTER_WIDTH) / want.video.width / 2) * 2;
      expect(poster, name).toMatchObject({ artifact: 'poster.jpg', width: POSTER_WIDTH, height });
      expect(poster.atSeconds, name).toBeCloseTo(want.duration * 0.1, 1);
      expect(status.posterUrl, name).toBe(`/uploads/${id}/poster`);
      const response = await fetchWithin(`${server.url}${status.posterUrl}`);
      expect(response.status, name).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/jpeg');
      const bytes = Buffer.from(await response.arrayBuffer());
      expect(await decodePoster(bytes, dir), name).toEqual({ codec: 'mjpeg', width: POSTER_WIDTH, height });
    }
  });

  it('the post-process hook carries the media facts', async () => {
    const receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    const hooked = await scope.server((await createTestStore(kind, scope)).startOptions({ HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, POSTER_WIDTH: String(POSTER_WIDTH) }));
    const id = await upload(hooked, samples.vp9 as Sample);
    const delivered = await receiver.waitForDelivered(id, 'post-process', 60_000);
    expect(delivered.payload.processing).toMatchObject({ state: 'done', results: { media: { container: 'matroska,webm', streams: [{ codec: 'vp9' }, { codec: 'opus' }] }, poster: { width: POSTER_WIDTH } } });
  });

  it('files that are not what they claim end done with a reason, within the time limit', async () => {
    const started = Date.now();
    const names = ['empty', 'truncated', 'text', 'exe', 'huge'] as const;
    const ids = await Promise.all(names.map((name) => upload(server, samples[name] as Sample)));
    const statuses = await Promise.all(ids.map((id) => waitForState(server.url, id, undefined, 60_000)));
    const byName = Object.fromEntries(names.map((name, i) => [name, statuses[i] as UploadStatus]));
    for (const [name, status] of Object.entries(byName)) expect(status.state, `${name}: ${JSON.stringify(status)}`).toBe('done');
    expect(mediaOf(byName.empty as UploadStatus)).toEqual({ skipped: 'empty file' });
    expect(mediaOf(byName.truncated as UploadStatus).unreadable).toMatch(/^ffprobe could not read it as media: /);
    expect(mediaOf(byName.text as UploadStatus).unreadable).toMatch(/^ffprobe could not read it as media: /);
    // The executable is not probed at all: its content says what it is.
    expect(mediaOf(byName.exe as UploadStatus)).toEqual({ skipped: 'not audio or video: its content is application/x-msdownload' });
    for (const name of ['empty', 'truncated', 'text', 'exe'] as const) expect(posterOf(byName[name] as UploadStatus), name).toEqual({ skipped: 'not wanted' });
    // The huge declared duration is recorded as declared; the frame 10% in does not exist, the first one does.
    const huge = byName.huge as UploadStatus;
    expect(mediaOf(huge).duration).toBeGreaterThan(4_000_000);
    expect(posterOf(huge)).toMatchObject({ artifact: 'poster.jpg', width: POSTER_WIDTH, atSeconds: 0 });
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});

describe('hostile files with ALLOWED_TYPES naming media types', () => {
  const scope = new Scope();
  let samples: Record<string, Sample>;
  let server: ServerProcess;

  beforeAll(async () => {
    samples = await makeSamples(await scope.tempDir('tus-e2e-media-'));
    server = await scope.server({ env: { ALLOWED_TYPES: 'video/*,audio/*', POSTER_WIDTH: String(POSTER_WIDTH) } });
  });
  afterAll(() => scope.dispose());

  it('a truncated MP4 is rejected by the media step with its reason; a real one is done', async () => {
    const [bad, good] = await Promise.all([upload(server, samples.truncated as Sample), upload(server, samples.h264 as Sample)]);
    const rejected = await waitForState(server.url, bad);
    expect(rejected.state).toBe('rejected');
    expect(rejected.processors.type).toMatchObject({ ok: true, result: { detected: 'video/mp4' } });
    expect(rejected.error).toMatch(/^the file claims to be audio or video but is not readable as such: ffprobe could not read it as media: /);
    expect(rejected.processors.poster).toBeUndefined();
    expect((await waitForState(server.url, good)).state).toBe('done');
  });
});

describe('ffprobe that hangs, ffprobe missing, and a SIGKILL during ffprobe', () => {
  const scope = new Scope();
  let samples: Record<string, Sample>;
  let dir: string;

  beforeAll(async () => {
    dir = await scope.tempDir('tus-e2e-media-');
    samples = await makeSamples(dir);
  });
  afterAll(() => scope.dispose());

  /** An "ffprobe" that writes its pid to `marker`, then sleeps `seconds` before running the real one. */
  async function slowFfprobe(marker: string, seconds: number): Promise<string> {
    const file = path.join(dir, `slow-ffprobe-${seconds}`);
    await fsp.writeFile(file, `#!/bin/sh\necho $$ > '${marker}'\nsleep ${seconds}\nexec ffprobe "$@"\n`, { mode: 0o755 });
    return file;
  }

  /** Kills the process group a leftover tool run leads (its pid is in `marker`), if any. */
  async function killLeftover(marker: string): Promise<void> {
    const pid = Number((await fsp.readFile(marker, 'utf8').catch(() => '')).trim());
    if (!pid) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  it('a run past MEDIA_TIMEOUT is killed, recorded with its reason, and the upload still ends done', async () => {
    const marker = path.join(dir, 'hang.pid');
    scope.defer(() => killLeftover(marker));
    const server = await scope.server({ env: { FFPROBE_PATH: await slowFfprobe(marker, 600), MEDIA_TIMEOUT: '2s' } });
    const started = Date.now();
    const id = await upload(server, samples.h264 as Sample);
    const status = await waitForState(server.url, id, undefined, 30_000);
    expect(status.state).toBe('done');
    expect(mediaOf(status).unreadable).toBe('ffprobe did not finish within 2 s (MEDIA_TIMEOUT)');
    expect(Date.now() - started).toBeLessThan(15_000);
    // The whole group went: the sleeping shell is gone.
    const pid = Number((await fsp.readFile(marker, 'utf8')).trim());
    await pollUntil(() => (isAlive(pid) ? undefined : true), 'the timed-out ffprobe to be gone', 5_000);
    // The server answers meanwhile and after.
    expect((await fetchWithin(`${server.url}/healthz`)).status).toBe(200);
  });

  it('without ffprobe and ffmpeg, media and poster are skipped with a startup warning', async () => {
    const server = await scope.server({ env: { FFPROBE_PATH: '/nonexistent/ffprobe', FFMPEG_PATH: '/nonexistent/ffmpeg' } });
    await server.waitForLog((line) => String(line.msg).startsWith('processor media is skipped: ffprobe is not installed'), 'the media warning');
    await server.waitForLog((line) => String(line.msg).startsWith('processor poster is skipped: ffmpeg is not installed'), 'the poster warning');
    const status = await waitForState(server.url, await upload(server, samples.h264 as Sample));
    expect(status.state).toBe('done');
    expect(Object.keys(status.processors).sort()).toEqual(['sha256', 'size', 'type']);
  });

  it('SIGKILL during ffprobe: the restarted server resumes after the last recorded step', async () => {
    const marker = path.join(dir, 'killed.pid');
    scope.defer(() => killLeftover(marker));
    const storageDir = await scope.tempDir('tus-e2e-media-kill-');
    const first = await scope.server({ storageDir, env: { FFPROBE_PATH: await slowFfprobe(marker, 120), MEDIA_TIMEOUT: '100s' } });
    const id = await upload(first, samples.h264 as Sample);
    await pollUntil(() => (fs.existsSync(marker) ? true : undefined), 'ffprobe to start', 30_000);
    const before = await readStatusFile(storageDir, id);
    expect(Object.keys(before?.processors ?? {}).sort()).toEqual(['sha256', 'size', 'type']);
    first.kill('SIGKILL');
    await withTimeout(first.exited, 10_000, 'the killed server to exit');
    await killLeftover(marker);

    const second = await scope.server({ storageDir, env: { POSTER_WIDTH: String(POSTER_WIDTH) } });
    const status = await waitForState(second.url, id);
    expect(status.state).toBe('done');
    expect(mediaOf(status)).toMatchObject({ container: 'mov,mp4,m4a,3gp,3g2,mj2', streams: [{ codec: 'h264' }, { codec: 'aac' }] });
    expect(posterOf(status)).toMatchObject({ width: POSTER_WIDTH });
    // The steps recorded before the kill were not run again.
    for (const step of ['size', 'sha256', 'type']) expect(status.processors[step]?.at, step).toBe(before?.processors[step]?.at);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const tokenFor = (sub: string) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

describe.each(STORE_KINDS)('[%s] the poster follows the upload: ownership, DELETE, retention, DELETE_AFTER_PROCESSING', (kind) => {
  const scope = new Scope();
  let samples: Record<string, Sample>;
  let server: ServerProcess;
  let store: TestStore;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    samples = await makeSamples(await scope.tempDir('tus-e2e-media-'));
    store = await createTestStore(kind, scope);
    server = await scope.server(store.startOptions({ AUTH_JWT_SECRET: SECRET, POSTER_WIDTH: String(POSTER_WIDTH) }));
    [alice, bob] = await Promise.all([tokenFor('alice'), tokenFor('bob')]);
  });
  afterAll(() => scope.dispose());

  const as = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

  it('only its owner gets it, or a signed link; DELETE removes it', async () => {
    const id = await upload(server, samples.h264 as Sample, { Authorization: `Bearer ${alice}` });
    expect((await getStatus(server.url, id)).status).toBe(401);
    let settled: WithPoster | undefined;
    await pollUntil(async () => {
      const response = await fetchWithin(`${server.url}/uploads/${id}`, as(alice));
      const body = (await response.json()) as WithPoster;
      if (body.state === 'done') settled = body;
      return settled;
    }, 'the upload to be done', 60_000, 100);
    const posterUrl = settled?.posterUrl ?? '';
    expect(posterUrl).toMatch(new RegExp(`^/uploads/${id}/poster\\?expires=\\d+&signature=`));

    const path = `${server.url}/uploads/${id}/poster`;
    expect((await fetchWithin(path, as(alice))).status).toBe(200);
    const other = await fetchWithin(path, as(bob));
    expect(other.status).toBe(404);
    expect((await fetchWithin(path)).status).toBe(401);
    // The signed link works without a header (an <img src>), and only for this path.
    const signed = await fetchWithin(`${server.url}${posterUrl}`);
    expect(signed.status).toBe(200);
    expect(signed.headers.get('content-type')).toBe('image/jpeg');
    expect((await fetchWithin(`${server.url}${posterUrl.replace('/poster', '/events')}`)).status).toBe(401);

    const deleted = await fetchWithin(`${server.endpoint}${id}`, { method: 'DELETE', headers: { ...TUS, Authorization: `Bearer ${alice}` } });
    expect(deleted.status).toBe(204);
    expect((await fetchWithin(path, as(alice))).status).toBe(404);
    expect(await artifactsOf(store, id)).toEqual([]);
  });

  it('FINISHED_UPLOAD_RETENTION removes the upload and its poster', async () => {
    const expiring = await scope.server((await createTestStore(kind, scope)).startOptions({ FINISHED_UPLOAD_RETENTION: '4s', EXPIRY_SWEEP_INTERVAL: '500ms', POSTER_WIDTH: String(POSTER_WIDTH) }));
    const id = await upload(expiring, samples.h264 as Sample);
    const status = (await waitForState(expiring.url, id)) as WithPoster;
    expect(status.posterUrl).toBe(`/uploads/${id}/poster`);
    expect((await fetchWithin(`${expiring.url}/uploads/${id}/poster`)).status).toBe(200);
    await pollUntil(async () => ((await fetchWithin(`${expiring.url}/uploads/${id}/poster`)).status === 200 ? undefined : true), 'the poster to go with the upload', 20_000, 200);
    expect((await fetchWithin(`${expiring.endpoint}${id}`, { method: 'HEAD', headers: TUS })).status).toBe(410);
  });

  it('DELETE_AFTER_PROCESSING: once the post-process hook is acknowledged the bytes go (410 saying so), the status and poster stay', async () => {
    const receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    const cleaned = await createTestStore(kind, scope);
    const cleaning = await scope.server(cleaned.startOptions({ DELETE_AFTER_PROCESSING: 'true', HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, AUTH_JWT_SECRET: SECRET, POSTER_WIDTH: String(POSTER_WIDTH) }));
    const id = await upload(cleaning, samples.h264 as Sample, { Authorization: `Bearer ${alice}` });
    await receiver.waitForDelivered(id, 'post-process', 60_000);
    const gone = await pollUntil(async () => {
      const response = await fetchWithin(`${cleaning.endpoint}${id}`, as(alice));
      return response.status === 410 ? response.text() : undefined;
    }, 'the bytes to be deleted', 20_000, 100);
    expect(gone?.trimEnd()).toBe(`ERR_UPLOAD_GONE: the upload was processed and its bytes were deleted (DELETE_AFTER_PROCESSING); its status and poster remain at /uploads/${id}`);
    // 410 is answered from the tombstone, written first; the record goes a moment later.
    await pollUntil(async () => ((await cleaned.objectsOf(id)).length === 0 ? true : undefined), 'the upload\'s objects to be gone', 10_000, 50);
    const response = await fetchWithin(`${cleaning.url}/uploads/${id}`, as(alice));
    expect(response.status).toBe(200);
    const status = (await response.json()) as WithPoster;
    expect(status).toMatchObject({ state: 'done', downloadUrl: null, posterUrl: expect.stringMatching(new RegExp(`^/uploads/${id}/poster\\?expires=`)) });
    expect(mediaOf(status).container).toBe('mov,mp4,m4a,3gp,3g2,mj2');
    expect((await fetchWithin(`${cleaning.url}/uploads/${id}/poster`, as(alice))).status).toBe(200);
    // Still its owner's alone, with only the record left to say whose it is.
    expect((await fetchWithin(`${cleaning.url}/uploads/${id}`, as(bob))).status).toBe(404);
    expect((await fetchWithin(`${cleaning.url}/uploads/${id}/poster`, as(bob))).status).toBe(404);
  });
});

describe('DELETE_AFTER_PROCESSING when the post-process hook is not acknowledged', () => {
  const scope = new Scope();
  afterAll(() => scope.dispose());

  it('a delivery retried until it succeeds deletes the bytes after it; one that dies keeps them', async () => {
    const samples = await makeSamples(await scope.tempDir('tus-e2e-media-'));
    const receiver = await startWebhookReceiver(SECRET);
    scope.defer(() => receiver.close());
    const server = await scope.server({ env: { DELETE_AFTER_PROCESSING: 'true', HOOKS_URL: receiver.url, HOOKS_SECRET: SECRET, HOOKS_MAX_ATTEMPTS: '2', HOOKS_RETRY_DELAY: '200ms' } });

    // Refused once, then acknowledged: deleted after the second delivery, not before.
    receiver.script('post-process', { failFirst: 1 });
    const retried = await upload(server, samples.h264 as Sample);
    await receiver.waitForDelivered(retried, 'post-process', 30_000);
    await pollUntil(async () => ((await fetchWithin(`${server.endpoint}${retried}`)).status === 410 ? true : undefined), 'the bytes to be deleted', 20_000, 100);
    expect(receiver.deliveries.filter((d) => d.uploadId === retried && d.type === 'post-process').map((d) => d.answeredStatus)).toEqual([500, 200]);

    // Never acknowledged (dead after HOOKS_MAX_ATTEMPTS): the bytes stay, downloadable.
    receiver.script('post-process', { status: 500 });
    const refused = await upload(server, samples.vp9 as Sample);
    await server.waitForLog((line) => line.uploadId === refused && String(line.msg).startsWith('post-process hook was never delivered'), 'the kept-bytes warning', 30_000);
    const download = await fetchWithin(`${server.endpoint}${refused}`);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(await fsp.readFile((samples.vp9 as Sample).path));
  });
});

const redisUrl = inject('redisUrl');

describe.skipIf(!redisUrl)('two instances on one bucket and one Redis', () => {
  const scope = new Scope();
  let samples: Record<string, Sample>;
  let dir: string;

  beforeAll(async () => {
    dir = await scope.tempDir('tus-e2e-media-');
    samples = await makeSamples(dir);
  });
  afterAll(() => scope.dispose());

  it('each upload is probed once, by one instance, however many HEADs and sweeps ask for it', async () => {
    // An ffprobe that logs each run and takes a second: a second run of one upload would show as an extra line.
    const runs = path.join(dir, 'ffprobe-runs.log');
    const wrapper = path.join(dir, 'logging-ffprobe');
    await fsp.writeFile(wrapper, `#!/bin/sh\necho "$$ start" >> '${runs}'\nsleep 1\nexec ffprobe "$@"\n`, { mode: 0o755 });
    const tag = randomBytes(5).toString('hex');
    const env = s3ServerEnv(inject('s3'), { S3_PREFIX: `media-${tag}/`, REDIS_URL: redisUrl ?? '', REDIS_PREFIX: `e2e-media-${tag}:`, FFPROBE_PATH: wrapper, EXPIRY_SWEEP_INTERVAL: '500ms' });
    const [a, b] = await Promise.all([scope.server({ env }), scope.server({ env })]);
    const names = ['h264', 'vp9', 'mov', 'audio'] as const;
    const ids = await Promise.all(names.map((name, i) => upload(i % 2 === 0 ? a : b, samples[name] as Sample)));
    // Meanwhile both instances are asked about every upload (a HEAD on a finished upload queues its processing).
    for (let round = 0; round < 5; round += 1) {
      await Promise.all(ids.flatMap((id) => [a, b].map((server) => head(`${server.endpoint}${id}`))));
    }
    for (const id of ids) expect((await waitForState(a.url, id)).state).toBe('done');
    for (const [i, id] of ids.entries()) expect(mediaOf((await getStatus(b.url, id)).body as UploadStatus).streams?.length, names[i]).toBeGreaterThan(0);
    const lines = (await fsp.readFile(runs, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(ids.length);
  });
});

/** The artifacts stored for an upload: file names under STORAGE_DIR/.artifacts/<id>, or keys under <S3_PREFIX>.artifacts/<id>/. */
async function artifactsOf(store: TestStore, id: string): Promise<string[]> {
  if (store.kind === 'file') return fsp.readdir(path.join(store.storageDir, '.artifacts', id)).catch(() => []);
  const prefix = store.env.S3_PREFIX ?? '';
  const bucket = new S3Inspector(inject('s3'));
  try {
    return await bucket.keys(`${prefix}.artifacts/${id}/`);
  } finally {
    bucket.close();
  }
}

/**
 * A measurement, not a test (skipped unless MEDIA_MEASURE_FILE names a video): the media and
 * poster steps on a large file, on both stores, with how much of the file each step read. The
 * README's numbers come from a 1 GiB H.264 MP4 whose moov box is at the end (see the report).
 */
const measured = process.env.MEDIA_MEASURE_FILE;
describe.skipIf(!measured).each(STORE_KINDS)('[%s] measure: media and poster on MEDIA_MEASURE_FILE', (kind) => {
  const scope = new Scope();
  afterAll(() => scope.dispose());

  it('processes it and reports time and bytes read per step', async () => {
    const file = measured as string;
    const size = (await fsp.stat(file)).size;
    const server = await scope.server((await createTestStore(kind, scope)).startOptions({ MEDIA_TIMEOUT: '10m', MAX_UPLOAD_SIZE: '4GiB' }));
    const client = startClientUpload(fs.createReadStream(file), { endpoint: server.endpoint, chunkSize: 64 * 1024 * 1024, uploadSize: size, metadata: { filename: path.basename(file), filetype: 'video/mp4' } }, 600_000);
    const id = uploadIdOf(await client.done);
    const status = await waitForState(server.url, id, undefined, 600_000, 500);
    expect(status.state).toBe('done');
    const media = status.processors.media?.result as MediaResult & { ms: number; requests: number };
    const poster = status.processors.poster?.result as PosterResult & { ms: number; requests: number; bytesRead: number };
    const pct = (bytes: number | undefined) => `${(((bytes ?? 0) / size) * 100).toFixed(3)}%`;
    process.stdout.write(
      `[${kind}] ${size} bytes, ${media.duration} s: media ${media.ms} ms, read ${media.bytesRead} bytes (${pct(media.bytesRead)}) in ${media.requests} requests; ` +
        `poster ${poster.ms} ms at ${poster.atSeconds} s, read ${poster.bytesRead} bytes (${pct(poster.bytesRead)}) in ${poster.requests} requests\n`,
    );
  });
});
