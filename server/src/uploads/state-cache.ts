import { Upload, type DataStore } from '@tus/utils';
import { trackOverlappingReads } from '../shared/overlapping-reads.js';
import type { UploadStorage } from '../storage/index.js';
import { hideCompleteCreationDate } from './upload-state.js';

export type StateCacheOptions = Readonly<{
  /** Uploads whose state is kept in memory at most (least recently read dropped first). @default 10_000 */
  maxEntries?: number;
}>;

/** DataStore methods that change what getUpload answers. */
const WRITES = new Set<PropertyKey>(['create', 'write', 'remove', 'declareUploadLength', 'deleteExpired']);

/**
 * Upload states kept in memory for the readers of one instance (HEAD, GET, the status
 * resource), so polling an upload costs no storage call. Correct only where every change
 * passes through this process: a single instance (with REDIS_URL, other instances write
 * too, and the cache is not used).
 *
 * Every write through the store (PATCH, creation, termination, a declared length, expiry)
 * drops the entry before it starts, and a read that overlapped a write is not kept: what is
 * cached was read while nothing wrote. When a write ends, the entry is dropped again, except
 * on file storage, where a creation and a write say exactly what the store now holds (the
 * record as created; the offset the data file grew to), so the entry becomes that: the
 * request that created or wrote the upload, and the processing it queues, read nothing back.
 * (On S3 an upload's offset depends on which bytes made a part; it is read back.)
 *
 * @tus/server reads through the cache too (as it reads the store: a complete upload without
 * its creation date); what it misses is read from the store, with the store's own errors.
 */
export function cacheUploadStates(storage: UploadStorage, { maxEntries = 10_000 }: StateCacheOptions = {}): UploadStorage {
  const states = new Map<string, Upload>();
  const reads = trackOverlappingReads();

  function invalidate(id: string): void {
    states.delete(id);
    reads.changing(id);
  }

  function invalidateAll(): void {
    states.clear();
    reads.changingAll();
  }

  /**
   * Runs a write, dropping what is cached of `id` (of every upload, without an id) before and
   * after; `after`, when given, says what the store holds once the write succeeded instead.
   */
  async function around<T>(id: unknown, write: () => Promise<T>, after?: (result: T) => Upload | undefined): Promise<T> {
    const drop = typeof id === 'string' ? () => invalidate(id) : invalidateAll;
    drop();
    let result: T;
    try {
      result = await write();
    } catch (error) {
      drop();
      throw error;
    }
    drop();
    const known = after?.(result);
    if (known && typeof id === 'string') keep(id, known);
    return result;
  }

  function keep(id: string, upload: Upload): void {
    if (states.size >= maxEntries) states.delete(states.keys().next().value as string);
    states.set(id, upload);
  }

  /** A copy of a store's Upload, free of whatever its caller does to its own object. */
  const copyOf = (upload: Upload, offset = upload.offset) =>
    new Upload({ id: upload.id, size: upload.size, offset, metadata: upload.metadata && { ...upload.metadata }, creation_date: upload.creation_date, storage: upload.storage });

  const writeThrough = storage.kind === 'file';
  /** What the store holds after `create(upload)` or a write of `id` that ended at `offset`. */
  const created = (upload: Upload) => (writeThrough ? copyOf(upload) : undefined);
  function written(id: string, before: Upload | undefined, offset: unknown): Upload | undefined {
    return writeThrough && before && typeof offset === 'number' ? copyOf(before, offset) : undefined;
  }

  async function getUpload(id: string): Promise<Upload> {
    const cached = states.get(id);
    if (cached) {
      // Most recently read last: the first entry is the one to drop.
      states.delete(id);
      states.set(id, cached);
      return cached;
    }
    return reads.read(id, () => storage.getUpload(id), (upload) => keep(id, upload));
  }

  // Every other member passes through untouched, methods bound to the real objects.
  const datastore = new Proxy(storage.datastore, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (property === 'getUpload') {
        return async (id: string) => {
          const cached = states.get(id);
          return cached ? hideCompleteCreationDate(copyOf(cached)) : method.call(target, id);
        };
      }
      // The id is the first argument of create (an Upload), write (stream, id, offset) and the others.
      if (property === 'create') return (upload: Upload) => around(upload.id, async () => method.call(target, upload), (stored) => created(stored as Upload));
      if (property === 'write') {
        return (...args: unknown[]) => {
          const id = args[1] as string;
          const before = states.get(id);
          return around(id, async () => method.apply(target, args), (offset) => written(id, before, offset));
        };
      }
      if (WRITES.has(property)) {
        return (...args: unknown[]) => around(property === 'deleteExpired' ? undefined : args[0], async () => method.apply(target, args));
      }
      return method.bind(target);
    },
  }) as DataStore;

  return new Proxy(storage, {
    get(target, property) {
      if (property === 'getUpload') return getUpload;
      if (property === 'datastore') return datastore;
      if (property === 'expire') return (id: string) => around(id, () => target.expire(id));
      // DELETE_AFTER_PROCESSING removes the bytes outside the datastore: the upload is gone (410) from then on.
      if (property === 'discardBytes') return (id: string) => around(id, () => target.discardBytes(id));
      if (property === 'concatenateInStore' && target.concatenateInStore) {
        const concatenate = target.concatenateInStore.bind(target);
        return (finalId: string, parts: Parameters<typeof concatenate>[1]) => around(finalId, () => concatenate(finalId, parts));
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
