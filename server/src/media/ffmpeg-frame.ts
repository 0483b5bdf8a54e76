import { INPUT_OPTIONS } from './ffprobe.js';
import type { MediaToolsConfig } from './media-tools.js';
import { lastLine, runTool } from './run-tool.js';

/** A poster larger than this is refused (a 640 px JPEG is some tens of KiB). */
const MAX_POSTER_BYTES = 8 * 1024 * 1024;

export type FrameOutcome = { ok: true; jpeg: Buffer; ms: number } | { ok: false; reason: string; ms: number };

/**
 * One frame as a JPEG, `atSeconds` into the video (seeking by the container's index, so
 * only what is near that point is read), scaled to `width` with the height following the
 * aspect ratio (even, as encoders like). `width` is capped by the source's own width.
 */
export async function extractFrame(url: string, atSeconds: number, width: number, config: MediaToolsConfig): Promise<FrameOutcome> {
  const run = await runTool(
    config.ffmpeg,
    [
      '-v', 'error', '-hide_banner', '-nostdin',
      ...INPUT_OPTIONS,
      '-ss', atSeconds.toFixed(3),
      '-i', url,
      '-map', '0:v:0', '-frames:v', '1', '-an', '-sn', '-dn',
      '-vf', `scale=${width}:-2:flags=bicubic`,
      '-threads', '2',
      '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '3', 'pipe:1',
    ],
    { timeoutMs: config.timeoutMs, memoryBytes: config.memoryBytes, maxStdout: MAX_POSTER_BYTES },
  );
  const seconds = `${Math.round(config.timeoutMs / 100) / 10} s`;
  if (run.timedOut) return { ok: false, reason: `ffmpeg did not finish within ${seconds} (MEDIA_TIMEOUT)`, ms: run.ms };
  if (run.overflow) return { ok: false, reason: `the frame was larger than ${MAX_POSTER_BYTES} bytes`, ms: run.ms };
  if (run.code !== 0) return { ok: false, reason: `ffmpeg could not decode a frame: ${lastLine(run.stderr.split(url).join('input')) || `exit ${run.code ?? run.signal}`}`, ms: run.ms };
  if (run.stdout.byteLength === 0) return { ok: false, reason: `no frame at ${atSeconds.toFixed(3)} s`, ms: run.ms };
  return { ok: true, jpeg: run.stdout, ms: run.ms };
}

/** Width and height from a JPEG's start-of-frame marker; undefined when there is none. */
export function jpegSize(jpeg: Buffer): { width: number; height: number } | undefined {
  let at = 2;
  while (at + 9 < jpeg.length) {
    if (jpeg[at] !== 0xff) return undefined;
    const marker = jpeg[at + 1] as number;
    const length = jpeg.readUInt16BE(at + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: jpeg.readUInt16BE(at + 5), width: jpeg.readUInt16BE(at + 7) };
    }
    at += 2 + length;
  }
  return undefined;
}
