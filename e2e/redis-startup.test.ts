import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { Scope, sleep } from './support/server-process.js';
import { fetchWithin, OCTET, TUS } from './support/tus.js';

/**
 * Issue 9: in 5 of 13 fresh starts with REDIS_URL and 32 uploads in flight from the first
 * second, the lock subscriber connection failed ioredis's ready check ("Connection in
 * subscriber mode, only subscriber commands may be used") and 7 to 73 requests got 500.
 * Here: several fresh starts of the real server, each loaded the moment it listens.
 */
const redisUrl = inject('redisUrl');

const UPLOADS = 32;
const SIZE = 64 * 1024;

type Outcome = Readonly<{ post: number; patch: number | undefined; offset: number | undefined; body: string }>;

/** One upload in two requests that each take the upload lock: creation-with-upload, then a PATCH. */
async function upload(endpoint: string, content: Uint8Array<ArrayBuffer>): Promise<Outcome> {
  const half = SIZE / 2;
  const created = await fetchWithin(endpoint, { method: 'POST', headers: { ...TUS, 'Upload-Length': String(SIZE), 'Content-Type': OCTET }, body: content.subarray(0, half) });
  const createdBody = await created.text();
  const location = created.headers.get('location');
  if (created.status !== 201 || !location) return { post: created.status, patch: undefined, offset: undefined, body: createdBody };
  const patched = await fetchWithin(new URL(location, endpoint).toString(), {
    method: 'PATCH',
    headers: { ...TUS, 'Content-Type': OCTET, 'Upload-Offset': created.headers.get('upload-offset') ?? String(half) },
    body: content.subarray(Number(created.headers.get('upload-offset') ?? half)),
  });
  const offset = patched.headers.get('upload-offset');
  return { post: created.status, patch: patched.status, offset: offset === null ? undefined : Number(offset), body: await patched.text() };
}

describe.skipIf(!redisUrl)('a fresh instance with REDIS_URL under load from its first moment', () => {
  const scope = new Scope();
  afterEach(() => scope.dispose());

  it('answers every one of 32 uploads sent the moment it listens, start after start, and its lock subscriber never fails', async () => {
    const tag = randomBytes(5).toString('hex');
    const redis = new Redis(redisUrl!, { maxRetriesPerRequest: 2 });
    redis.on('error', () => undefined);
    scope.defer(() => redis.quit());
    const content = new Uint8Array(randomBytes(SIZE));
    for (let start = 0; start < 4; start += 1) {
      const prefix = `e2e-startup-${tag}-${start}:`;
      scope.defer(async () => {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
      });
      const server = await scope.server({ env: { REDIS_URL: redisUrl!, REDIS_PREFIX: prefix } });
      // All in flight at once, a few ms apart: some arrive while the lock connections come up.
      const outcomes = await Promise.all(
        Array.from({ length: UPLOADS }, async (_, i) => {
          await sleep(i * 2);
          return upload(server.endpoint, content);
        }),
      );
      const failed = outcomes.filter((o) => o.post !== 201 || o.patch !== 204 || o.offset !== SIZE);
      const subscriberErrors = server.logs().filter((line) => line.msg === 'lock subscriber connection error');
      expect({ start, failed, subscriberErrors }, server.output().slice(-4_000)).toEqual({ start, failed: [], subscriberErrors: [] });
      await server.stop();
    }
  });
});
