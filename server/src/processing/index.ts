import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { createFileJobQueue } from './file-job-queue.js';
import { createFileStatusStore, fileRecords } from './file-status-store.js';
import { createRecordStatusStore, withLegacyRecords } from './record-status-store.js';
import type { JobKind, JobQueue, RetryPolicy } from './job-queue.js';
import { detectType } from './processors/detect-type.js';
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

/** The standard processors, in order: size, sha256, real type. Add one here to extend processing. */
export function defaultProcessors(config: Config, storage: UploadStorage): Processor[] {
  return [
    verifySize(async (id) => {
      const upload = await storage.getUpload(id);
      return { offset: upload.offset, size: upload.size };
    }),
    sha256,
    detectType(config.validation.allowedTypes),
  ];
}
