import { EventEmitter } from 'node:events';
import { createKeyedSequence } from '../shared/keyed-sequence.js';
import { trackOverlappingReads } from '../shared/overlapping-reads.js';
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
   * Records this process wrote or read last, most recent last, and ids it knows have none
   * (null): processing updates a record once per step, and each update would otherwise read
   * back what the previous one just wrote; a new upload's processing asks for its record
   * (there is none) before it writes it. Every write and delete passes through here.
   */
  const recent = new Map<string, StatusRecord | null>();

  function remember(id: string, record: StatusRecord | null): void {
    recent.delete(id);
    if (recent.size >= RECENT_RECORDS) recent.delete(recent.keys().next().value as string);
    recent.set(id, record);
  }

  /** A write or delete of an id makes a read of it in flight stale: its answer is not kept. */
  const reads = trackOverlappingReads();
  const changing = (id: string) => reads.changing(id);

  async function get(id: string): Promise<StatusRecord | undefined> {
    const known = recent.get(id);
    if (known !== undefined) return known ?? undefined;
    const record = await reads.read(
      id,
      async () => {
        const text = await objects.read(id);
        return text === undefined ? null : (JSON.parse(text) as StatusRecord);
      },
      (found) => remember(id, found),
    );
    return record ?? undefined;
  }

  /** Runs `step` after every earlier update or delete of `id` in this process. */
  const serialized = <T>(id: string, step: () => Promise<T>): Promise<T> => sequence.run(id, step);

  function update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord> {
    return serialized(id, async () => {
      const record = change(await get(id));
      changing(id);
      await objects.write(id, JSON.stringify(record));
      changing(id);
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
        recent.delete(id);
        changing(id);
        await objects.remove(id);
        changing(id);
        remember(id, null);
      }),
    subscribe(id: string, listener: StatusListener): () => void {
      events.on(id, listener);
      return () => events.off(id, listener);
    },
    noRecordFor(id: string): void {
      if (!recent.has(id) && !reads.isReading(id)) remember(id, null);
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
