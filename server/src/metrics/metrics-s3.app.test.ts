import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ServerEnv } from '../../../e2e/services/s3-env.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, patchUpload } from '../testing/http-test-helpers.js';
import { parseSamples, sampleValue } from './prometheus-text.js';

// The S3 client's calls, timed by a middleware on the client, by command name.
describe('metrics on S3 storage', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(s3ServerEnv(inject('s3'), { S3_PART_SIZE: '5MiB', S3_PREFIX: `metrics-${randomBytes(4).toString('hex')}/` }));
  });
  afterAll(() => t?.cleanup());

  it('observes tus_s3_request_duration_seconds by S3 command after an upload', async () => {
    const { path, id } = await createUpload(t.app, { 'Upload-Length': '11' });
    expect((await patchUpload(t.app, path, 0, 'hello world')).status).toBe(204);
    const samples = parseSamples(await (await t.app.request('/metrics')).text());
    const counts = samples.filter((s) => s.name === 'tus_s3_request_duration_seconds_count');
    const operations = counts.map((s) => s.labels.operation);
    expect(operations).toContain('CreateMultipartUploadCommand');
    expect(operations).toContain('CompleteMultipartUploadCommand');
    expect(sampleValue(samples, 'tus_s3_request_duration_seconds_count', { operation: 'PutObjectCommand' })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, 'tus_s3_request_duration_seconds_sum', { operation: 'PutObjectCommand' })).toBeGreaterThan(0);
    for (const s of counts) {
      expect(s.labels.operation).toMatch(/^[A-Za-z0-9]+Command$/);
      expect(s.labels.operation).not.toContain(id);
    }
  });
});
