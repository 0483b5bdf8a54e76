import fs from 'node:fs/promises';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { ERRORS } from '@tus/utils';
import { describe, expect, it } from 'vitest';
import { isServiceUnavailable } from '../errors.js';
import { isStorageFull, storageFull } from './storage-errors.js';

/** An S3 error as the SDK builds it from a service's XML answer. */
function s3Error(name: string, status: number, extra: Record<string, unknown> = {}): S3ServiceException {
  return Object.assign(
    new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status, attempts: 1, totalRetryDelay: 0 }, message: 'UnknownError' }),
    { Code: name, ...extra },
  );
}

describe('isStorageFull', () => {
  it('recognizes a full disk or quota from the file system', () => {
    expect(isStorageFull(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }))).toBe(true);
    expect(isStorageFull(Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT' }))).toBe(true);
  });

  it('looks through cause chains', () => {
    const enospc = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    expect(isStorageFull(new Error('could not write the queue', { cause: enospc }))).toBe(true);
  });

  it("recognizes Ceph RGW's answer for a bucket past its quota (recorded from this repository's Ceph: PutObject and UploadPart alike)", () => {
    // radosgw-admin quota set --quota-scope=bucket --max-size=1048576; quota enable; then a 2 MiB PutObject:
    // name QuotaExceeded, Code QuotaExceeded, HTTP 403, $fault client, message "UnknownError".
    const ceph = s3Error('QuotaExceeded', 403, { BucketName: 'sf-quota-probe', RequestId: 'tx000004838e25d7c489834-006b11659f-39277-default', HostId: '39277-default-default' });
    expect(isStorageFull(ceph)).toBe(true);
    // A 4xx: not an outage either way, but the catalogue's answer must be the 507.
    expect(isServiceUnavailable(ceph)).toBe(false);
  });

  it("recognizes MinIO's full disk (507) and bucket quota (400)", () => {
    expect(isStorageFull(s3Error('XMinioStorageFull', 507))).toBe(true);
    expect(isStorageFull(s3Error('XMinioAdminBucketQuotaExceeded', 400))).toBe(true);
    // Any 507 Insufficient Storage, whatever the code says.
    expect(isStorageFull(s3Error('Unknown', 507))).toBe(true);
  });

  it('leaves other failures alone', () => {
    // One object over S3's size limit: retrying never helps, it is no full disk.
    expect(isStorageFull(s3Error('EntityTooLarge', 400))).toBe(false);
    expect(isStorageFull(s3Error('InternalError', 500))).toBe(false);
    expect(isStorageFull(s3Error('AccessDenied', 403))).toBe(false);
    expect(isStorageFull(Object.assign(new Error('ECONNRESET'), { code: 'ECONNRESET' }))).toBe(false);
    expect(isStorageFull(Object.assign(new Error('EACCES'), { code: 'EACCES' }))).toBe(false);
    expect(isStorageFull(ERRORS.FILE_WRITE_ERROR)).toBe(false);
    expect(isStorageFull(undefined)).toBe(false);
    expect(isStorageFull('ENOSPC')).toBe(false);
  });

  it('recognizes what a real write to a full file system throws, where the machine has one (/dev/full)', async () => {
    const full = '/dev/full';
    const available = await fs.access(full).then(() => true, () => false);
    if (!available) return;
    const error = await fs.writeFile(full, 'x').then(() => undefined, (e: unknown) => e);
    expect(isStorageFull(error)).toBe(true);
  });
});

describe('storageFull', () => {
  it('is a 507 ERR_STORAGE_FULL with Retry-After', () => {
    const error = storageFull();
    expect(error.status).toBe(507);
    expect(error.code).toBe('ERR_STORAGE_FULL');
    expect(error.headers['Retry-After']).toBe('30');
    expect(error.body).toMatch(/^ERR_STORAGE_FULL: .+ HEAD .+\n$/);
  });
});
