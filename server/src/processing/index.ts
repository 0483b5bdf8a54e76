import path from 'node:path';
import type { BuiltinProcessor, Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createFileJobQueue } from './file-job-queue.js';
import { createFileStatusStore, fileRecords } from './file-status-store.js';
import { createRecordStatusStore, withLegacyRecords } from './record-status-store.js';
import type { JobKind, JobQueue, RetryPolicy } from './job-queue.js';
import { missingTools } from '../media/media-tools.js';
import { detectType } from './processors/detect-type.js';
import { mediaProbe } from './processors/media.js';
import { posterFrame } from './processors/poster.js';
import { sha256 } from './processors/sha256.js';
import type { Processor } from './processors/types.js';
import { verifySize } from './processors/verify-size.js';
import type { StatusStore } from './status-store.js';
import type { UploadStorage } from '../storage/index.js';

/** The durable queue and the status records processing runs on. */
export type ProcessingStores = Readonly<{ queue: JobQueue; statuses: StatusStore }>;

/** The job queue's retry policies, concurrency and hook-job retention, the same for the embedded and the Redis queue. */
export function queueSettings(config: Config): Readonly<{ policies: Record<JobKind, RetryPolicy>; concurrency: Record<JobKind, number>; retentionMs: number }> {
  return {
    retentionMs: config.processing.jobRetentionMs,
    concurrency: { 'process-upload': config.processing.concurrency, 'deliver-hook': 8 },
    policies: {
      'process-upload': { maxAttempts: config.processing.maxAttempts, baseDelayMs: config.processing.retryDelayMs, maxDelayMs: 5 * 60_000 },
      'deliver-hook': { maxAttempts: config.hooks.maxAttempts, baseDelayMs: config.hooks.retryDelayMs, maxDelayMs: 5 * 60_000 },
    },
  };
}

/**
 * The durable queue and status records, embedded, so a single instance needs no service
 * (several instances share Redis's instead, server/src/redis). The queue is in the storage
 * directory. The status records live with the uploads: in the storage directory for file
 * storage, beside the uploads in the bucket for S3 (`storage.records`), so an instance
 * started with an empty STORAGE_DIR still knows what was processed.
 */
export function createProcessingState(config: Config, logger: Logger, storage?: Pick<UploadStorage, 'records'>): ProcessingStores {
  const base = config.storage.directory;
  const queue = createFileJobQueue({ directory: path.join(base, '.queue'), logger, ...queueSettings(config) });
  const local = path.join(base, '.status');
  // Records written to STORAGE_DIR before they moved beside the uploads are still read.
  const statuses = storage?.records ? createRecordStatusStore(withLegacyRecords(storage.records, fileRecords(local))) : createFileStatusStore(local);
  return { queue, statuses };
}

/** The built-in processors PROCESSORS names that cannot run here (media and poster without ffprobe/ffmpeg), and why. */
export function unavailableProcessors(config: Config): { name: BuiltinProcessor; reason: string }[] {
  const missing = missingTools(config.media);
  const needs: Partial<Record<BuiltinProcessor, 'ffprobe' | 'ffmpeg'>> = { media: 'ffprobe', poster: 'ffmpeg' };
  return config.processing.processors.flatMap((name) => {
    const tool = needs[name];
    return tool && missing.includes(tool) ? [{ name, reason: `${tool} is not installed (${tool === 'ffprobe' ? 'FFPROBE_PATH' : 'FFMPEG_PATH'}=${config.media[tool]})` }] : [];
  });
}

/** Startup warnings for the processors PROCESSORS names that are skipped (main.ts logs them). */
export const processorWarnings = (config: Config): string[] =>
  unavailableProcessors(config).map(({ name, reason }) => `processor ${name} is skipped: ${reason}; install Debian's ffmpeg package or remove it from PROCESSORS`);

/**
 * The built-in processors PROCESSORS names, in its order (default size, sha256, type,
 * media, poster), less those that cannot run here. An embedding program passes its own list
 * to createApp (deps.processors), built from these and its own (README: Media processing).
 */
export function defaultProcessors(config: Config, storage: UploadStorage): Processor[] {
  const skipped = new Set(unavailableProcessors(config).map(({ name }) => name));
  const builtins: Record<BuiltinProcessor, () => Processor> = {
    size: () =>
      // The bytes on disk (or in the bucket), not what this process remembers writing.
      verifySize(async (id) => {
        const [upload, stored] = await Promise.all([storage.getUpload(id), storage.storedBytes(id)]);
        return { offset: stored, size: upload.size };
      }),
    sha256: () => sha256,
    type: () => detectType(config.validation.allowedTypes),
    media: () => mediaProbe({ tools: config.media, allowedTypes: config.validation.allowedTypes }),
    poster: () => posterFrame({ tools: config.media, artifacts: storage.artifacts }),
  };
  return config.processing.processors.filter((name) => !skipped.has(name)).map((name) => builtins[name]());
}
