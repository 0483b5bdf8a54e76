import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStatusStore } from './file-status-store.js';
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
