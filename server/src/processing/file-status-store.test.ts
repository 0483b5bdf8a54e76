import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStatusStore } from './file-status-store.js';
import type { StatusRecord } from './status-store.js';

const at = '2026-01-01T00:00:00.000Z';
const record = (id: string, overrides: Partial<StatusRecord> = {}): StatusRecord => ({ id, state: 'processing', processors: {}, error: null, updatedAt: at, ...overrides });

describe('file status store', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-status-'));
  });
  afterEach(async () => {
    await fs.rm(directory, { recursive: true, force: true });
  });

  it('answers undefined for an unknown id and creates the directory lazily', async () => {
    const dir = path.join(directory, 'nested', '.status');
    const store = createFileStatusStore(dir);
    expect(await store.get('nope')).toBeUndefined();
    await store.update('a', () => record('a'));
    expect(await store.get('a')).toEqual(record('a'));
    expect((await fs.readdir(dir)).sort()).toEqual(['.tmp', 'a.json']);
  });

  it('hands the current record to the change and stores what it returns', async () => {
    const store = createFileStatusStore(directory);
    const seen: (StatusRecord | undefined)[] = [];
    await store.update('a', (current) => {
      seen.push(current);
      return record('a');
    });
    const updated = await store.update('a', (current) => {
      seen.push(current);
      return { ...current!, state: 'done', processors: { size: { ok: true, result: { stored: 3 }, at } } };
    });
    expect(seen).toEqual([undefined, record('a')]);
    expect(updated.state).toBe('done');
    expect(await store.get('a')).toEqual(updated);
  });

  it('applies concurrent updates of one id one at a time (no lost update)', async () => {
    const store = createFileStatusStore(directory);
    await store.update('a', () => record('a'));
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.update('a', (current) => ({ ...current!, processors: { ...current!.processors, [`p${i}`]: { ok: true, at } } })),
      ),
    );
    expect(Object.keys((await store.get('a'))!.processors)).toHaveLength(50);
  });

  it('a change that throws rejects its own update and leaves the record and the next updates alone', async () => {
    const store = createFileStatusStore(directory);
    await store.update('a', () => record('a'));
    const failing = store.update('a', () => {
      throw new Error('bad change');
    });
    const next = store.update('a', (current) => ({ ...current!, state: 'done' }));
    await expect(failing).rejects.toThrow('bad change');
    expect((await next).state).toBe('done');
    expect((await store.get('a'))?.state).toBe('done');
  });

  it('persists records for a new store on the same directory (a restart)', async () => {
    await createFileStatusStore(directory).update('a', () => record('a', { state: 'rejected', error: 'why' }));
    expect(await createFileStatusStore(directory).get('a')).toEqual(record('a', { state: 'rejected', error: 'why' }));
  });

  it('replaces records atomically: no temporary file is left, and the file is always whole JSON', async () => {
    const store = createFileStatusStore(directory);
    await store.update('a', () => record('a'));
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

  it('tells subscribers of an id about each of its updates, until they unsubscribe', async () => {
    const store = createFileStatusStore(directory);
    const heard: string[] = [];
    const other: string[] = [];
    const unsubscribe = store.subscribe('a', (r) => heard.push(r.state));
    store.subscribe('b', (r) => other.push(r.state));
    await store.update('a', () => record('a'));
    await store.update('a', (current) => ({ ...current!, state: 'done' }));
    unsubscribe();
    await store.update('a', (current) => ({ ...current!, state: 'failed' }));
    expect(heard).toEqual(['processing', 'done']);
    expect(other).toEqual([]);
  });

  it('a subscriber is told after the record is on disk', async () => {
    const store = createFileStatusStore(directory);
    const onDisk: (StatusRecord | undefined)[] = [];
    store.subscribe('a', () => {
      onDisk.push(undefined);
      void store.get('a').then((r) => (onDisk[onDisk.length - 1] = r));
    });
    await store.update('a', () => record('a', { state: 'done' }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(onDisk.map((r) => r?.state)).toEqual(['done']);
  });

  it('delete removes the record; deleting twice is fine', async () => {
    const store = createFileStatusStore(directory);
    await store.update('a', () => record('a'));
    await store.delete('a');
    await store.delete('a');
    expect(await store.get('a')).toBeUndefined();
  });

  it('a damaged record is an error, not a missing one', async () => {
    const store = createFileStatusStore(directory);
    await fs.writeFile(path.join(directory, 'a.json'), '{"id":"a",');
    await expect(store.get('a')).rejects.toThrow();
  });
});
