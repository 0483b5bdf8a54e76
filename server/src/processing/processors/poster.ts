import { extractFrame, jpegSize } from '../../media/ffmpeg-frame.js';
import type { MediaStream } from '../../media/ffprobe.js';
import type { MediaToolsConfig } from '../../media/media-tools.js';
import { openRangeSource } from '../../media/range-source.js';
import type { ArtifactStore } from '../../storage/index.js';
import type { MediaResult, ReadCost } from './media.js';
import type { Processor, ProcessorUpload } from './types.js';

/** The artifact the poster is stored as, beside the upload. */
export const POSTER_ARTIFACT = 'poster.jpg';

export type PosterResult =
  | (Readonly<{ artifact: string; contentType: 'image/jpeg'; width: number; height: number; bytes: number; atSeconds: number }> & ReadCost)
  /** No frame could be decoded: the upload is still done. */
  | (Readonly<{ unavailable: string }> & ReadCost);

/** The first video stream the media step found, when there is one. */
function videoOf(previous: ProcessorUpload['previous']): MediaStream | undefined {
  const media = previous.media as MediaResult | undefined;
  return media && 'streams' in media ? media.streams.find((stream) => stream.type === 'video') : undefined;
}

/**
 * One JPEG frame from about 10% into the video, `posterWidth` wide (never wider than the
 * video), stored as the upload's `poster.jpg` artifact (served at /uploads/<id>/poster).
 * Wants uploads the media step found a video stream in. A frame that cannot be had where
 * the container says (a duration that lies) is taken from the start instead.
 */
export function posterFrame({ tools, artifacts }: { tools: MediaToolsConfig; artifacts: ArtifactStore }): Processor<PosterResult> {
  return {
    name: 'poster',
    wants: ({ previous }) => videoOf(previous) !== undefined,
    async run({ id, size, read, previous }) {
      const video = videoOf(previous);
      const media = previous.media as (MediaResult & { duration?: number | null }) | undefined;
      const duration = media?.duration ?? video?.duration ?? null;
      const width = Math.min(tools.posterWidth, video?.width || tools.posterWidth);
      const source = await openRangeSource(size, read);
      try {
        let at = duration && duration > 0 ? duration * 0.1 : 0;
        let frame = await extractFrame(source.url, at, width, tools);
        let ms = frame.ms;
        if (!frame.ok && at > 0 && !frame.reason.includes('MEDIA_TIMEOUT')) {
          at = 0;
          frame = await extractFrame(source.url, 0, width, tools);
          ms += frame.ms;
        }
        const failure = source.readError();
        if (failure) throw new Error(`reading the upload for ffmpeg failed: ${failure.message}`, { cause: failure });
        const cost = { bytesRead: source.bytesSent(), requests: source.requests(), ms };
        if (!frame.ok) return { result: { unavailable: frame.reason, ...cost } };
        const dimensions = jpegSize(frame.jpeg);
        if (!dimensions) return { result: { unavailable: 'ffmpeg produced something that is not a JPEG', ...cost } };
        await artifacts.write(id, POSTER_ARTIFACT, frame.jpeg);
        return {
          result: { artifact: POSTER_ARTIFACT, contentType: 'image/jpeg', ...dimensions, bytes: frame.jpeg.byteLength, atSeconds: Math.round(at * 1000) / 1000, ...cost },
        };
      } finally {
        await source.close();
      }
    },
  };
}
