import type { Config } from '../config.js';
import { createFileStorage } from './file-storage.js';
import type { S3StorageOptions } from './s3-storage.js';
import type { UploadStorage } from './types.js';

export type { ArtifactStore, ByteRange, RecordObjects, UploadStorage } from './types.js';
export { artifactContentType } from './types.js';

export type StorageDeps = Readonly<{
  /** Shared cache of S3 `.info` contents for several instances (RedisBackend.metadataCache()). */
  metadataCache?: S3StorageOptions['metadataCache'];
}>;

/** Builds the configured storage kind; a new kind joins this switch and the StorageKind union. */
export async function createStorage(config: Config, deps: StorageDeps = {}): Promise<UploadStorage> {
  const { storage } = config;
  switch (storage.kind) {
    case 'file':
      return createFileStorage({ directory: storage.directory, uploadExpiryMs: config.tus.uploadExpiryMs });
    case 's3': {
      // Loaded on demand: the AWS SDK adds ~130 ms and ~20 MiB to every start, file storage included.
      const { createS3Storage } = await import('./s3-storage.js');
      return createS3Storage({ config: storage, uploadExpiryMs: config.tus.uploadExpiryMs, metadataCache: deps.metadataCache });
    }
    default: {
      const unknownKind: never = storage;
      throw new Error(`unknown storage kind ${String((unknownKind as { kind: unknown }).kind)}`);
    }
  }
}
