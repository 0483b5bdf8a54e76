import { S3Client } from '@aws-sdk/client-s3';
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

/** The endpoint and keys of an S3 service, without a bucket. */
export type S3Endpoint = Omit<ProvidedS3, 'bucket'>;

/**
 * An SDK client for the tests' own look into the bucket, configured as the server's store is:
 * Ceph RGW answers the SDK's default aws-chunked trailing checksums with 411 MissingContentLength.
 */
export function testS3Client(s3: S3Endpoint): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    forcePathStyle: s3.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
