import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { StatusListener, StatusRecord, StatusStore } from './status-store.js';

/**
 * Status records as JSON files (`<dir>/<id>.json`), replaced atomically. Updates of one id
 * (and deletes) are chained in this process so read-modify-write never loses a processor's
 * result and never writes back a record that was deleted meanwhile.
 */
export function createFileStatusStore(directory: string): StatusStore {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const chains = new Map<string, Promise<unknown>>();
  const file = (id: string) => path.join(directory, `${id}.json`);
  let made: Promise<unknown> | undefined;
  const ensureDir = () => (made ??= fs.mkdir(path.join(directory, '.tmp'), { recursive: true }));

  async function get(id: string): Promise<StatusRecord | undefined> {
    try {
      return JSON.parse(await fs.readFile(file(id), 'utf8')) as StatusRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async function write(id: string, record: StatusRecord): Promise<void> {
    await ensureDir();
    const temp = path.join(directory, '.tmp', `${id}.${randomBytes(6).toString('hex')}`);
    await fs.writeFile(temp, JSON.stringify(record));
    await fs.rename(temp, file(id));
  }

  /** Runs `step` after every earlier update or delete of `id` in this process. */
  function serialized<T>(id: string, step: () => Promise<T>): Promise<T> {
    const previous = chains.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(step);
    chains.set(id, next);
    void next.finally(() => {
      if (chains.get(id) === next) chains.delete(id);
    }).catch(() => undefined);
    return next;
  }

  function update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord> {
    return serialized(id, async () => {
      const record = change(await get(id));
      await write(id, record);
      events.emit(id, record);
      return record;
    });
  }

  return {
    get,
    update,
    // In the same chain as updates: an update in flight cannot write a deleted record back.
    delete: (id: string) => serialized(id, () => fs.rm(file(id), { force: true })),
    subscribe(id: string, listener: StatusListener): () => void {
      events.on(id, listener);
      return () => events.off(id, listener);
    },
  };
}
