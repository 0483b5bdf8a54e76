import { EventEmitter } from 'node:events';
import type { RecordObjects } from '../storage/index.js';
import type { StatusListener, StatusRecord, StatusStore } from './status-store.js';

/**
 * Status records as one JSON document per upload in `objects` (files in STORAGE_DIR, or
 * objects beside the uploads in the bucket), each replaced whole by a write. Updates of one
 * id (and deletes) are chained in this process so read-modify-write never loses a
 * processor's result and never writes back a record that was deleted meanwhile. Without a
 * compare-and-set this is safe for one instance per store; several instances share Redis's.
 */
export function createRecordStatusStore(objects: RecordObjects): StatusStore {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const chains = new Map<string, Promise<unknown>>();

  async function get(id: string): Promise<StatusRecord | undefined> {
    const text = await objects.read(id);
    return text === undefined ? undefined : (JSON.parse(text) as StatusRecord);
  }

  /** Runs `step` after every earlier update or delete of `id` in this process. */
  function serialized<T>(id: string, step: () => Promise<T>): Promise<T> {
    const previous = chains.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(step);
    chains.set(id, next);
    void next
      .finally(() => {
        if (chains.get(id) === next) chains.delete(id);
      })
      .catch(() => undefined);
    return next;
  }

  function update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord> {
    return serialized(id, async () => {
      const record = change(await get(id));
      await objects.write(id, JSON.stringify(record));
      events.emit(id, record);
      return record;
    });
  }

  return {
    get,
    update,
    // In the same chain as updates: an update in flight cannot write a deleted record back.
    delete: (id: string) => serialized(id, () => objects.remove(id)),
    subscribe(id: string, listener: StatusListener): () => void {
      events.on(id, listener);
      return () => events.off(id, listener);
    },
  };
}

/**
 * `primary`, falling back to `legacy` for records written before `primary` held them (an S3
 * deployment's records used to live in STORAGE_DIR): reads try both, writes go to `primary`,
 * removals to both.
 */
export function withLegacyRecords(primary: RecordObjects, legacy: RecordObjects): RecordObjects {
  return {
    read: async (id) => (await primary.read(id)) ?? legacy.read(id),
    write: (id, text) => primary.write(id, text),
    async remove(id) {
      await Promise.all([primary.remove(id), legacy.remove(id)]);
    },
  };
}
