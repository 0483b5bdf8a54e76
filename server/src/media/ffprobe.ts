import { lastLine, runTool } from './run-tool.js';
import type { MediaToolsConfig } from './media-tools.js';

/**
 * The demuxers ffprobe and ffmpeg may open: containers of audio and video, and nothing that
 * names other resources (hls, dash, concat, image2 sequences, lavfi, subtitle playlists),
 * which a hostile upload could use to make the tool read elsewhere.
 */
export const MEDIA_FORMATS = [
  'mov', 'mp4', 'm4a', '3gp', '3g2', 'mj2', 'matroska', 'webm', 'avi', 'mpegts', 'mpeg', 'flv', 'ogg',
  'mp3', 'wav', 'w64', 'aiff', 'aac', 'flac', 'asf', 'mxf', 'ivf', 'amr', 'h264', 'hevc', 'm4v',
].join(',');

/** Input options of every run: what to read, how much of it to look at before answering. */
export const INPUT_OPTIONS = [
  '-protocol_whitelist', 'http,tcp',
  '-format_whitelist', MEDIA_FORMATS,
  // ffprobe's own defaults (5 MB, 5 s), stated: bounded whatever ffmpeg's build defaults to.
  '-probesize', String(5_000_000),
  '-analyzeduration', String(5_000_000),
];

export type MediaStream = Readonly<{
  index: number;
  type: string;
  codec: string | null;
  width?: number;
  height?: number;
  /** Frames per second (avg_frame_rate, else r_frame_rate), rounded to 3 decimals. */
  frameRate?: number | null;
  pixelFormat?: string | null;
  sampleRate?: number | null;
  channels?: number | null;
  duration?: number | null;
}>;

export type MediaInfo = Readonly<{
  /** ffprobe's demuxer name(s), e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "matroska,webm". */
  container: string;
  /** Seconds, as the container declares it; null when it declares none. */
  duration: number | null;
  /** Bits per second of the whole file. */
  bitRate: number | null;
  streams: readonly MediaStream[];
}>;

export type ProbeOutcome = { ok: true; info: MediaInfo; ms: number } | { ok: false; reason: string; ms: number };

type RawStream = Record<string, unknown>;

const num = (value: unknown): number | null => {
  const n = typeof value === 'string' || typeof value === 'number' ? Number(value) : NaN;
  return Number.isFinite(n) ? n : null;
};
const str = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

/** "30000/1001" → 29.97; "0/0" → null. */
function rate(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const [n, d] = value.split('/').map(Number);
  if (!n || !d || !Number.isFinite(n / d)) return null;
  return Math.round((n / d) * 1000) / 1000;
}

function streamOf(raw: RawStream): MediaStream {
  const type = str(raw.codec_type) ?? 'unknown';
  const base = { index: num(raw.index) ?? 0, type, codec: str(raw.codec_name), duration: num(raw.duration) };
  if (type === 'video') {
    return { ...base, width: num(raw.width) ?? 0, height: num(raw.height) ?? 0, frameRate: rate(raw.avg_frame_rate) ?? rate(raw.r_frame_rate), pixelFormat: str(raw.pix_fmt) };
  }
  if (type === 'audio') return { ...base, sampleRate: num(raw.sample_rate), channels: num(raw.channels) };
  return base;
}

/** What ffprobe's JSON says, in our terms; undefined when it found no audio or video at all. */
export function mediaInfoOf(json: string): MediaInfo | undefined {
  const parsed = JSON.parse(json) as { format?: Record<string, unknown>; streams?: RawStream[] };
  const streams = (parsed.streams ?? []).map(streamOf);
  if (!parsed.format || !streams.some((s) => s.type === 'video' || s.type === 'audio')) return undefined;
  return { container: str(parsed.format.format_name) ?? 'unknown', duration: num(parsed.format.duration), bitRate: num(parsed.format.bit_rate), streams };
}

/** ffprobe on a URL (a RangeSource's): the file's facts, or why it does not probe as media. */
export async function probe(url: string, config: MediaToolsConfig): Promise<ProbeOutcome> {
  const run = await runTool(
    config.ffprobe,
    ['-v', 'error', '-hide_banner', '-print_format', 'json', '-show_format', '-show_streams', ...INPUT_OPTIONS, '-i', url],
    { timeoutMs: config.timeoutMs, memoryBytes: config.memoryBytes, maxStdout: 1024 * 1024 },
  );
  const seconds = `${Math.round(config.timeoutMs / 100) / 10} s`;
  if (run.timedOut) return { ok: false, reason: `ffprobe did not finish within ${seconds} (MEDIA_TIMEOUT)`, ms: run.ms };
  if (run.overflow) return { ok: false, reason: 'ffprobe printed more than 1 MiB about the file', ms: run.ms };
  if (run.code !== 0) {
    const why = lastLine(run.stderr.replace(new RegExp(url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g'), 'input')) || `exit ${run.code ?? run.signal}`;
    return { ok: false, reason: `ffprobe could not read it as media: ${why}`, ms: run.ms };
  }
  let info: MediaInfo | undefined;
  try {
    info = mediaInfoOf(run.stdout.toString('utf8'));
  } catch {
    return { ok: false, reason: 'ffprobe answered something that is not JSON', ms: run.ms };
  }
  if (!info) return { ok: false, reason: 'ffprobe found no audio or video stream', ms: run.ms };
  return { ok: true, info, ms: run.ms };
}
