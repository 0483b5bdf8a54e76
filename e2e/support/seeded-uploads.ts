import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/**
 * Many finished uploads written straight into a store, the way the stores keep them, without
 * uploading each through HTTP: for measuring what the background sweeps cost when a store
 * holds thousands of uploads (e2e/bench/sweep-cost.ts, e2e/processing-state.test.ts).
 * Each upload holds one byte. Used against older checkouts too (the "before" measurement),
 * so it depends on no server module.
 */
export type SeedTarget =
  | Readonly<{ kind: 'file'; directory: string }>
  | Readonly<{ kind: 's3'; client: S3Client; bucket: string; prefix: string }>;

const BODY = Buffer.from('x');

/** Runs `work` for each of `items`, `concurrency` at a time. */
export async function eachLimited<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Writes `count` finished one-byte uploads and returns their ids. */
export async function seedFinishedUploads(target: SeedTarget, count: number, concurrency = 32): Promise<string[]> {
  const ids = Array.from({ length: count }, () => randomBytes(16).toString('hex'));
  const creation_date = new Date().toISOString();
  await eachLimited(ids, concurrency, async (id) => {
    if (target.kind === 'file') {
      const file = path.join(target.directory, id);
      // What @tus/file-store keeps: the data file, and <id>.json (offset 0: the store reads the file's size).
      await fsp.writeFile(file, BODY);
      const record = { id, size: BODY.length, offset: 0, metadata: { filename: `${id}.bin` }, creation_date, storage: { type: 'file', path: file } };
      await fsp.writeFile(path.join(target.directory, `${id}.json`), JSON.stringify(record));
      return;
    }
    const { client, bucket, prefix } = target;
    // What @tus/s3-store keeps once an upload is finished: the object and `<id>.info`, whose
    // multipart upload is completed (ListParts answers NoSuchUpload).
    const info = { id, size: BODY.length, offset: 0, metadata: { filename: `${id}.bin` }, creation_date, storage: { type: 's3', path: `${prefix}${id}`, bucket } };
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${id}`, Body: BODY }));
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${prefix}${id}.info`,
        Body: JSON.stringify(info),
        Metadata: { 'upload-id': `seeded-${id}`, 'tus-version': '1.0.0' },
      }),
    );
  });
  return ids;
}

/** Deletes every object under `prefix` (bounded: at most `maxPages` listings of 1,000). */
export async function deletePrefix(client: S3Client, bucket: string, prefix: string, maxPages = 1_000): Promise<number> {
  let deleted = 0;
  for (let page = 0; page < maxPages; page += 1) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (listed.Contents ?? []).flatMap(({ Key }) => (Key === undefined ? [] : [Key]));
    if (keys.length === 0) break;
    await eachLimited(keys, 32, (Key) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key })));
    deleted += keys.length;
  }
  return deleted;
}

/** S3 requests a client makes, by command name, from the moment of the call (SDK middleware). */
export function countS3Requests(client: S3Client): { counts: Map<string, number>; total(): number; reset(): void } {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      counts.set(context.commandName ?? '?', (counts.get(context.commandName ?? '?') ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: `count-requests-${randomBytes(4).toString('hex')}` },
  );
  return { counts, total: () => [...counts.values()].reduce((a, b) => a + b, 0), reset: () => counts.clear() };
}

/**
 * node:fs/promises calls, counted by name until uninstall(): @tus/file-store and our stores
 * call them through the module's default export, which is patched here.
 */
const FS_CALLS = ['readFile', 'writeFile', 'stat', 'lstat', 'readdir', 'access', 'open', 'rm', 'unlink', 'rename', 'mkdir'] as const;

export function countFsCalls(): { counts: Map<string, number>; total(): number; reset(): void; uninstall(): void } {
  const counts = new Map<string, number>();
  const target = fsp as unknown as Record<string, (...args: unknown[]) => unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const name of FS_CALLS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    originals.set(name, original);
    target[name] = (...args: unknown[]) => {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return original.apply(fsp, args);
    };
  }
  return {
    counts,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    reset: () => counts.clear(),
    uninstall() {
      for (const [name, original] of originals) target[name] = original;
    },
  };
}
