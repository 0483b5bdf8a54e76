import { Readable } from 'node:stream';
import { describe, expect, inject, it } from 'vitest';
import { mediaInfoOf } from './ffprobe.js';
import { findTool, missingTools } from './media-tools.js';
import { openRangeSource } from './range-source.js';
import { runTool } from './run-tool.js';

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('runTool', () => {
  it('kills the whole process group at the time limit, children included', async () => {
    // The shell starts a background sleep and prints its pid, then waits: both must go.
    const run = await runTool('sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300, memoryBytes: 0, maxStdout: 1024 });
    expect(run.timedOut).toBe(true);
    expect(run.signal).toBe('SIGKILL');
    expect(run.ms).toBeLessThan(5_000);
    const child = Number(run.stdout.toString().trim());
    expect(child).toBeGreaterThan(0);
    const deadline = Date.now() + 5_000;
    while (isAlive(child) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isAlive(child)).toBe(false);
  });

  it('runs under an address-space limit (prlimit --as): a tool that needs more fails instead of growing', async () => {
    expect(findTool('prlimit')).toBeDefined();
    // A shell holding 200 MB in a variable does not fit in 64 MiB of address space; a small one does.
    const grow = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived ${#x}';
    const run = await runTool('sh', ['-c', grow], { timeoutMs: 20_000, memoryBytes: 64 * 1024 * 1024, maxStdout: 1024 });
    expect(run.timedOut).toBe(false);
    expect(run.code).not.toBe(0);
    expect(run.stdout.toString()).not.toContain('survived');
    const free = await runTool('sh', ['-c', 'echo fine'], { timeoutMs: 20_000, memoryBytes: 64 * 1024 * 1024, maxStdout: 1024 });
    expect(free).toMatchObject({ code: 0, timedOut: false });
    expect(free.stdout.toString()).toBe('fine\n');
  });

  it('stops a tool that prints more than it may', async () => {
    const run = await runTool('sh', ['-c', 'yes'], { timeoutMs: 10_000, memoryBytes: 0, maxStdout: 64 * 1024 });
    expect(run.overflow).toBe(true);
    expect(run.timedOut).toBe(false);
    expect(run.stdout.byteLength).toBeLessThanOrEqual(64 * 1024);
  });

  it('gives the tool no environment of the server (a proxy setting cannot reach ffmpeg)', async () => {
    const run = await runTool('sh', ['-c', 'env'], { timeoutMs: 10_000, memoryBytes: 0, maxStdout: 64 * 1024 });
    const names = run.stdout.toString().split('\n').filter(Boolean).map((line) => line.split('=')[0]);
    expect(names.filter((name) => !['PWD', 'SHLVL', '_'].includes(name ?? '')).sort()).toEqual(['LC_ALL', 'PATH']);
  });

  it('rejects when the tool is not installed; missingTools names it', async () => {
    await expect(runTool('/nonexistent/ffprobe', [], { timeoutMs: 1_000, memoryBytes: 0, maxStdout: 1 })).rejects.toThrow('/nonexistent/ffprobe is not installed');
    expect(missingTools({ ffprobe: '/nonexistent/ffprobe', ffmpeg: 'sh' })).toEqual(['ffprobe']);
    expect(findTool('../../bin/sh')).toBeUndefined();
  });
});

describe('range source', () => {
  const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
  const source = () => openRangeSource(data.length, async ({ start, end }) => Readable.from([data.subarray(start, end + 1)]));

  it('serves ranges of the stored bytes at its random path only, and counts what it sent', async () => {
    const served = await source();
    try {
      const partial = await fetch(served.url, { headers: { Range: 'bytes=100-199' } });
      expect(partial.status).toBe(206);
      expect(partial.headers.get('content-range')).toBe('bytes 100-199/10000');
      expect(Buffer.from(await partial.arrayBuffer())).toEqual(data.subarray(100, 200));
      const tail = await fetch(served.url, { headers: { Range: 'bytes=-10' } });
      expect(Buffer.from(await tail.arrayBuffer())).toEqual(data.subarray(9_990));
      const open = await fetch(served.url, { headers: { Range: 'bytes=9000-' } });
      expect(Buffer.from(await open.arrayBuffer())).toEqual(data.subarray(9_000));
      expect((await fetch(served.url, { headers: { Range: 'bytes=10000-' } })).status).toBe(416);
      expect((await fetch(new URL('/other', served.url))).status).toBe(404);
      expect((await fetch(served.url, { method: 'POST' })).status).toBe(404);
      expect(served.bytesSent()).toBe(100 + 10 + 1_000);
      expect(served.readError()).toBeUndefined();
      expect(new URL(served.url).hostname).toBe('127.0.0.1');
    } finally {
      await served.close();
    }
  });

  it('a tool that hangs up mid-body (a seek) is no failure, and the store stops being read', async () => {
    const big = Buffer.alloc(64 * 1024 * 1024, 7);
    const pieces = function* (from: number, to: number) {
      for (let at = from; at <= to; at += 64 * 1024) yield big.subarray(at, Math.min(at + 64 * 1024, to + 1));
    };
    const served = await openRangeSource(big.length, async ({ start, end }) => Readable.from(pieces(start, end)));
    try {
      const controller = new AbortController();
      const response = await fetch(served.url, { signal: controller.signal });
      const reader = response.body!.getReader();
      await reader.read();
      controller.abort();
      await reader.read().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(served.readError()).toBeUndefined();
      expect(served.bytesSent()).toBeLessThan(big.length / 2);
    } finally {
      await served.close();
    }
  });

  it('remembers a failed read of the store (the step is then retried, not blamed on the file)', async () => {
    const served = await openRangeSource(100, async () => {
      throw new Error('S3 said no');
    });
    try {
      await fetch(served.url).then((r) => r.arrayBuffer()).catch(() => undefined);
      expect(served.readError()?.message).toBe('S3 said no');
    } finally {
      await served.close();
    }
  });
});

describe('mediaInfoOf', () => {
  it("turns ffprobe's JSON into the recorded facts", () => {
    const json = JSON.stringify({
      format: { format_name: 'matroska,webm', duration: '2.000000', bit_rate: '265000' },
      streams: [
        { index: 0, codec_type: 'video', codec_name: 'vp9', width: 320, height: 180, avg_frame_rate: '30000/1001', r_frame_rate: '30000/1001', pix_fmt: 'yuv420p' },
        { index: 1, codec_type: 'audio', codec_name: 'opus', sample_rate: '48000', channels: 2 },
        { index: 2, codec_type: 'subtitle', codec_name: 'webvtt' },
      ],
    });
    expect(mediaInfoOf(json)).toEqual({
      container: 'matroska,webm',
      duration: 2,
      bitRate: 265000,
      streams: [
        { index: 0, type: 'video', codec: 'vp9', width: 320, height: 180, frameRate: 29.97, pixelFormat: 'yuv420p', duration: null },
        { index: 1, type: 'audio', codec: 'opus', sampleRate: 48000, channels: 2, duration: null },
        { index: 2, type: 'subtitle', codec: 'webvtt', duration: null },
      ],
    });
  });

  it('no audio or video stream: nothing', () => {
    expect(mediaInfoOf(JSON.stringify({ format: { format_name: 'tty' }, streams: [{ index: 0, codec_type: 'data' }] }))).toBeUndefined();
    expect(mediaInfoOf('{}')).toBeUndefined();
  });

  it('ffmpeg is installed for these tests', () => {
    expect(inject('ffmpeg')?.error).toBeUndefined();
  });
});
