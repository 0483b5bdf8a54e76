import type { ProvidedS3 } from './s3-global-setup.js';

/**
 * The server's S3 settings for the test bucket of e2e/services/s3-global-setup.ts
 * (`inject('s3')`), as environment variables; `overrides` win (S3_PREFIX, S3_PART_SIZE...).
 */
export function s3ServerEnv(s3: ProvidedS3, overrides: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    STORAGE: 's3',
    S3_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: String(s3.forcePathStyle),
    ...overrides,
  };
}
