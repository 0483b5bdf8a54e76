import { probe, type MediaInfo } from '../../media/ffprobe.js';
import type { MediaToolsConfig } from '../../media/media-tools.js';
import { openRangeSource } from '../../media/range-source.js';
import { essence } from '../../media-types.js';
import type { DetectTypeResult } from './detect-type.js';
import type { Processor, ProcessorInput } from './types.js';

/** How much of the stored file a tool read, through the range source. */
export type ReadCost = Readonly<{ bytesRead: number; requests: number; ms: number }>;

export type MediaResult =
  | Readonly<{ skipped: string }>
  /** The file claims to be audio or video but ffprobe cannot read it as such. */
  | (Readonly<{ unreadable: string }> & ReadCost)
  | (MediaInfo & ReadCost);

const isAudioOrVideo = (type: string | null | undefined) => Boolean(type && (type.startsWith('video/') || type.startsWith('audio/')));

/** Whether ALLOWED_TYPES admits audio or video only: then a file that claims to be and is not is refused. */
export const namesMediaTypes = (allowedTypes: readonly string[]) => allowedTypes.some(isAudioOrVideo);

/**
 * Why an upload is not one to probe, from the type processor's finding (its content) or,
 * without one, the declared filetype; undefined when it claims to be audio or video.
 */
export function notMediaReason({ size, metadata, previous }: Pick<ProcessorInput, 'size' | 'metadata' | 'previous'>): string | undefined {
  if (size === 0) return 'empty file';
  const found = previous.type as DetectTypeResult | undefined;
  const declared = found?.declared ?? (metadata.filetype ? essence(metadata.filetype) : null);
  if (found?.detected) return isAudioOrVideo(found.detected) ? undefined : `not audio or video: its content is ${found.detected}`;
  if (declared) return isAudioOrVideo(declared) ? undefined : `not audio or video: declared as ${declared}`;
  return 'not audio or video: no type was detected or declared';
}

/**
 * ffprobe's facts about audio and video uploads: container, duration, bit rate, and per
 * stream the codec, size, frame rate, pixel format, sample rate and channels. ffprobe reads
 * the stored bytes through a range source (range-source.ts), so it reads what it needs (the
 * head, and the moov box wherever it is), never the whole file. A file that claims to be
 * media and does not probe is rejected when ALLOWED_TYPES names media types, else recorded
 * as `unreadable`. Store failures throw (the step is retried); nothing the file does does.
 */
export function mediaProbe({ tools, allowedTypes }: { tools: MediaToolsConfig; allowedTypes: readonly string[] }): Processor<MediaResult> {
  return {
    name: 'media',
    quick: (input) => notMediaReason(input) !== undefined,
    async run(input) {
      const skip = notMediaReason(input);
      if (skip) return { result: { skipped: skip } };
      const source = await openRangeSource(input.size, (range) => input.read(range));
      try {
        const outcome = await probe(source.url, tools);
        const failure = source.readError();
        if (failure) throw new Error(`reading the upload for ffprobe failed: ${failure.message}`, { cause: failure });
        const cost = { bytesRead: source.bytesSent(), requests: source.requests(), ms: outcome.ms };
        if (outcome.ok) return { result: { ...outcome.info, ...cost } };
        const result = { unreadable: outcome.reason, ...cost };
        return namesMediaTypes(allowedTypes) ? { result, reject: `the file claims to be audio or video but is not readable as such: ${outcome.reason}` } : { result };
      } finally {
        await source.close();
      }
    },
  };
}
