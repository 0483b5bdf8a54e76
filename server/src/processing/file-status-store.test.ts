import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RecordObjects } from '../storage/index.js';
import { createFileStatusStore } from './file-status-store.js';
import { createRecordStatusStore } from './record-status-store.js';
import { statusRecord as record, statusStoreContract } from './status-store.contract.js';

statusStoreContract('file', async () => {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-status-'));
  return {
    open: () => createFileStatusStore(directory),
    damage: (id) => fs.writeFile(path.join(directory, `${id}.json`), `{"id":"${id}",`),
    destroy: () => fs.rm(directory, { recursive: true, force: true }),
  };
});

describe('file status store', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-status-'));
  });
  afterEach(async () => {
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('creates the directory lazily, with records as <id>.json', async () => {
    const dir = path.join(directory, 'nested', '.status');
    const store = createFileStatusStore(dir);
    expect(await store.get('nope')).toBeUndefined();
    await store.update('a', () => record('a'));
    expect(await store.get('a')).toEqual(record('a'));
    expect((await fs.readdir(dir)).sort()).toEqual(['.tmp', 'a.json']);
  });

  it('replaces records atomically: no temporary file is left, and the file is always whole JSON', async () => {
    const store = createFileStatusStore(directory);
    await store.update('a', () => record('a'));
    const at = '2026-01-01T00:00:00.000Z';
    const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`p${i}`, { ok: true, result: 'x'.repeat(200), at }]));
    let reads = 0;
    let stop = false;
    const reader = (async () => {
      // Read while writing: every read must parse.
      for (let i = 0; i < 5_000 && !stop; i += 1) {
        JSON.parse(await fs.readFile(path.join(directory, 'a.json'), 'utf8'));
        reads += 1;
      }
    })();
    for (let i = 0; i < 30; i += 1) await store.update('a', (current) => ({ ...current!, processors: i % 2 ? big : {} }));
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(await fs.readdir(path.join(directory, '.tmp'))).toEqual([]);
  });
});

describe('record status store memory', () => {
  /** Documents in memory, reads counted; a read can be held (answering what was there when it began). */
  function objects() {
    const docs = new Map<string, string>();
    let reads = 0;
    let hold: Promise<void> | undefined;
    const store: RecordObjects = {
      async read(id) {
        reads += 1;
        const text = docs.get(id);
        const held = hold;
        hold = undefined;
        await held;
        return text;
      },
      write: async (id, text) => void docs.set(id, text),
      remove: async (id) => void docs.delete(id),
    };
    return { store, reads: () => reads, holdNextRead: (until: Promise<void>) => (hold = until) };
  }

  it('knows an id has no record once read: asking again, and the update that writes it, read nothing', async () => {
    const docs = objects();
    const store = createRecordStatusStore(docs.store);
    expect(await store.get('a')).toBeUndefined();
    expect(await store.get('a')).toBeUndefined();
    await store.update('a', (current) => current ?? record('a'));
    expect(await store.get('a')).toEqual(record('a'));
    await store.delete('a');
    expect(await store.get('a')).toBeUndefined();
    expect(docs.reads()).toBe(1);
  });

  it('told an upload was just created, answers that it has no record without a read; never forgets a record it knows', async () => {
    const docs = objects();
    const store = createRecordStatusStore(docs.store);
    store.noRecordFor?.('new');
    expect(await store.get('new')).toBeUndefined();
    expect(docs.reads()).toBe(0);
    await store.update('known', () => record('known'));
    store.noRecordFor?.('known');
    expect(await store.get('known')).toEqual(record('known'));
  });

  it('does not keep what a read found when an update of the id ran meanwhile', async () => {
    const docs = objects();
    const store = createRecordStatusStore(docs.store);
    let release!: () => void;
    docs.holdNextRead(new Promise<void>((resolve) => (release = resolve)));
    // Begins while there is no record, and answers after the update wrote one.
    const slowRead = store.get('a');
    await store.update('a', () => record('a'));
    release();
    expect(await slowRead).toBeUndefined();
    expect(await store.get('a')).toEqual(record('a'));
  });
});
