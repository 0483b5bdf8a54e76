import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { StatusListener, StatusRecord, StatusStore } from './status-store.js';

/**
 * Status records as JSON files (`<dir>/<id>.json`), replaced atomically. Updates of one id
 * are chained in this process so read-modify-write never loses a processor's result.
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

  function update(id: string, change: (current: StatusRecord | undefined) => StatusRecord): Promise<StatusRecord> {
    const previous = chains.get(id) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        const record = change(await get(id));
        await write(id, record);
        events.emit(id, record);
        return record;
      });
    chains.set(id, next);
    void next.finally(() => {
      if (chains.get(id) === next) chains.delete(id);
    }).catch(() => undefined);
    return next;
  }

  return {
    get,
    update,
    async delete(id: string): Promise<void> {
      await fs.rm(file(id), { force: true });
    },
    subscribe(id: string, listener: StatusListener): () => void {
      events.on(id, listener);
      return () => events.off(id, listener);
    },
  };
}
