import { afterEach, describe, expect, it } from 'vitest';
import type { StatusRecord } from '../processing/status-store.js';
import { createRedisStatusStore } from './redis-status-store.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

const at = '2026-01-01T00:00:00.000Z';
const record = (id: string, overrides: Partial<StatusRecord> = {}): StatusRecord => ({ id, state: 'processing', processors: {}, error: null, updatedAt: at, ...overrides });

describe.skipIf(!redisUrl)('redis status store', () => {
  const conns = connections();
  const stores: { close(): Promise<void> }[] = [];
  let prefix = '';

  /** A store on its own connection: one per simulated server instance. */
  const instance = () => {
    const store = createRedisStatusStore({ redis: conns.connect(), prefix });
    stores.push(store);
    return store;
  };

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await deletePrefix(conns.connect(), prefix);
    await conns.closeAll();
  });

  it('answers undefined for an unknown id, then what an update stored', async () => {
    prefix = testPrefix('status');
    const store = instance();
    expect(await store.get('nope')).toBeUndefined();
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
    expect(await store.get('a')).toEqual(updated);
    // Another instance (a restart) reads the same record.
    expect(await instance().get('a')).toEqual(updated);
  });

  it('applies concurrent updates from two instances without losing one', async () => {
    prefix = testPrefix('status');
    const a = instance();
    const b = instance();
    await a.update('a', () => record('a'));
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        (i % 2 ? a : b).update('a', (current) => ({ ...current!, processors: { ...current!.processors, [`p${i}`]: { ok: true, at } } })),
      ),
    );
    expect(Object.keys((await a.get('a'))!.processors)).toHaveLength(60);
  });

  it('a change that throws rejects its own update and leaves the record and the next updates alone', async () => {
    prefix = testPrefix('status');
    const store = instance();
    await store.update('a', () => record('a'));
    const failing = store.update('a', () => {
      throw new Error('bad change');
    });
    const next = store.update('a', (current) => ({ ...current!, state: 'done' }));
    await expect(failing).rejects.toThrow('bad change');
    expect((await next).state).toBe('done');
    expect((await store.get('a'))?.state).toBe('done');
  });

  it('tells subscribers about updates from this instance at once and from others through pub/sub', async () => {
    prefix = testPrefix('status');
    const a = instance();
    const b = instance();
    const heard: string[] = [];
    const other: string[] = [];
    const unsubscribe = a.subscribe('x', (r) => heard.push(r.state));
    a.subscribe('y', (r) => other.push(r.state));
    await a.subscribed();
    await a.update('x', () => record('x'));
    expect(heard).toEqual(['processing']); // synchronous for local updates
    await b.update('x', (current) => ({ ...current!, state: 'done' }));
    await expect.poll(() => heard, { timeout: 2_000 }).toEqual(['processing', 'done']);
    unsubscribe();
    await b.update('x', (current) => ({ ...current!, state: 'failed' }));
    await a.update('x', (current) => ({ ...current!, state: 'rejected' }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(heard).toEqual(['processing', 'done']);
    expect(other).toEqual([]);
  });

  it('delete removes the record; deleting twice is fine; an update after it starts afresh', async () => {
    prefix = testPrefix('status');
    const store = instance();
    await store.update('a', () => record('a'));
    await store.delete('a');
    await store.delete('a');
    expect(await store.get('a')).toBeUndefined();
    const seen: (StatusRecord | undefined)[] = [];
    await store.update('a', (current) => {
      seen.push(current);
      return record('a');
    });
    expect(seen).toEqual([undefined]);
  });

  it('a damaged record is an error, not a missing one', async () => {
    prefix = testPrefix('status');
    const store = instance();
    await conns.connect().set(`${prefix}a`, '{"id":"a",');
    await expect(store.get('a')).rejects.toThrow();
  });
});
