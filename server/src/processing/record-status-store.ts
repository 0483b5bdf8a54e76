import { EventEmitter } from 'node:events';
import { createKeyedSequence } from '../shared/keyed-sequence.js';
import type { RecordObjects } from '../storage/index.js';
import type { StatusListener, StatusRecord, StatusStore } from './status-store.js';

/**
 * Status records as one JSON document per upload in `objects` (files in STORAGE_DIR, or
 * objects beside the uploads in the bucket), each replaced whole by a write. Updates of one
 * id (and deletes) are chained in this process so read-modify-write never loses a
 * processor's result and never writes back a record that was deleted meanwhile. Without a
 * compare-and-set this is safe for one instance per store; several instances share Redis's.
 */
/** How many records written here are kept in memory (a few KiB each at most). */
const RECENT_RECORDS = 1_000;

export function createRecordStatusStore(objects: RecordObjects): StatusStore {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const sequence = createKeyedSequence();
  /**
   * Records this process wrote last, most recent last: processing updates a record once per
   * step, and each update would otherwise read back what the previous one just wrote.
   */
  const written = new Map<string, StatusRecord>();

  function remember(id: string, record: StatusRecord | undefined): void {
    written.delete(id);
    if (!record) return;
    if (written.size >= RECENT_RECORDS) written.delete(written.keys().next().value as string);
    written.set(id, record);
  }

  async function get(id: string): Promise<StatusRecord | undefined> {
    const recent = written.get(id);
    if (recent) return recent;
    const text = await objects.read(id);
    return text === undefined ? undefined : (JSON.parse(text) as StatusRecord);
  }

  /** Runs `step` after every earlier update or delete of `id` in this process. */
  const serialized = <T>(id: string, step: () => Promise<T>): Promise<T> => sequence.run(id, step);

  function update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord> {
    return serialized(id, async () => {
      const record = change(await get(id));
      await objects.write(id, JSON.stringify(record));
      remember(id, record);
      events.emit(id, record);
      return record;
    });
  }

  return {
    get,
    update,
    // In the same chain as updates: an update in flight cannot write a deleted record back.
    delete: (id: string) =>
      serialized(id, async () => {
        remember(id, undefined);
        await objects.remove(id);
      }),
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
