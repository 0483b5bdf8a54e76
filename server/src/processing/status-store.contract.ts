import { afterEach, describe, expect, it } from 'vitest';
import type { StatusRecord, StatusStore } from './status-store.js';

/**
 * The guarantees every StatusStore gives (see status-store.ts), as a suite that runs against
 * each implementation: files in STORAGE_DIR, objects beside the uploads in an S3 bucket, and
 * Redis. Not a test file itself: an implementation's test file calls
 * `statusStoreContract(name, createBackend, options)`. Every wait is bounded.
 */

/** A store instance; a Redis one also has a subscriber connection to close. */
export type ContractStatusStore = StatusStore & { subscribed?(): Promise<void>; close?(): Promise<void> };

/** One backing store (a directory, a bucket prefix, a Redis key prefix) that several store instances can open. */
export type StatusStoreBackend = Readonly<{
  /** A store instance on this backend; a second one is what a restarted (or another) instance opens. */
  open(): ContractStatusStore;
  /** Writes half a record for `id` straight into the backing store (a torn write from outside). */
  damage(id: string): Promise<void>;
  /** Removes everything the backend stored. */
  destroy(): Promise<void>;
}>;

export type StatusStoreContractOptions = Readonly<{
  /**
   * Whether instances on one backend may update at once (Redis: compare-and-set, and
   * subscribers hear other instances' updates). The file and S3 stores serialise updates
   * within one process only: one instance per STORAGE_DIR or bucket prefix without Redis.
   */
  sharedByInstances?: boolean;
}>;

const at = '2026-01-01T00:00:00.000Z';
export const statusRecord = (id: string, overrides: Partial<StatusRecord> = {}): StatusRecord => ({
  id,
  state: 'processing',
  processors: {},
  error: null,
  updatedAt: at,
  ...overrides,
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function statusStoreContract(name: string, createBackend: () => Promise<StatusStoreBackend>, options: StatusStoreContractOptions = {}): void {
  describe(`StatusStore contract: ${name}`, () => {
    const opened: ContractStatusStore[] = [];
    const backends: StatusStoreBackend[] = [];

    async function backend(): Promise<StatusStoreBackend> {
      const created = await createBackend();
      backends.push(created);
      return created;
    }

    function storeOn(on: StatusStoreBackend): ContractStatusStore {
      const store = on.open();
      opened.push(store);
      return store;
    }

    const fresh = async () => storeOn(await backend());

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close?.()));
      await Promise.all(backends.splice(0).map((b) => b.destroy()));
    });

    it('answers undefined for an unknown id, then what an update stored', async () => {
      const store = await fresh();
      expect(await store.get('nope')).toBeUndefined();
      await store.update('a', () => statusRecord('a'));
      expect(await store.get('a')).toEqual(statusRecord('a'));
    });

    it('hands the current record to the change and stores what it returns', async () => {
      const store = await fresh();
      const seen: (StatusRecord | undefined)[] = [];
      await store.update('a', (current) => {
        seen.push(current);
        return statusRecord('a');
      });
      const updated = await store.update('a', (current) => {
        seen.push(current);
        return { ...current!, state: 'done', processors: { size: { ok: true, result: { stored: 3 }, at } } };
      });
      expect(seen).toEqual([undefined, statusRecord('a')]);
      expect(updated.state).toBe('done');
      expect(await store.get('a')).toEqual(updated);
    });

    it('persists records for a new store on the same backend (a restart)', async () => {
      const on = await backend();
      const updated = await storeOn(on).update('a', () => statusRecord('a', { state: 'rejected', error: 'why' }));
      expect(updated).toEqual(statusRecord('a', { state: 'rejected', error: 'why' }));
      expect(await storeOn(on).get('a')).toEqual(statusRecord('a', { state: 'rejected', error: 'why' }));
    });

    it('applies concurrent updates of one id one at a time (no lost update)', async () => {
      const store = await fresh();
      await store.update('a', () => statusRecord('a'));
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          store.update('a', (current) => ({ ...current!, processors: { ...current!.processors, [`p${i}`]: { ok: true, at } } })),
        ),
      );
      expect(Object.keys((await store.get('a'))!.processors)).toHaveLength(50);
    });

    it('a change that throws rejects its own update and leaves the record and the next updates alone', async () => {
      const store = await fresh();
      await store.update('a', () => statusRecord('a'));
      const failing = store.update('a', () => {
        throw new Error('bad change');
      });
      const next = store.update('a', (current) => ({ ...current!, state: 'done' }));
      await expect(failing).rejects.toThrow('bad change');
      expect((await next).state).toBe('done');
      expect((await store.get('a'))?.state).toBe('done');
    });

    it('tells subscribers of an id about each of its updates, at once, until they unsubscribe', async () => {
      const store = await fresh();
      const heard: string[] = [];
      const other: string[] = [];
      const unsubscribe = store.subscribe('a', (r) => heard.push(r.state));
      store.subscribe('b', (r) => other.push(r.state));
      await store.subscribed?.();
      await store.update('a', () => statusRecord('a'));
      expect(heard).toEqual(['processing']); // synchronous for this instance's updates
      await store.update('a', (current) => ({ ...current!, state: 'done' }));
      unsubscribe();
      await store.update('a', (current) => ({ ...current!, state: 'failed' }));
      await sleep(50);
      expect(heard).toEqual(['processing', 'done']);
      expect(other).toEqual([]);
    });

    it('a subscriber is told after the record is stored', async () => {
      const store = await fresh();
      const stored: (StatusRecord | undefined)[] = [];
      const reads: Promise<unknown>[] = [];
      store.subscribe('a', () => {
        const index = stored.push(undefined) - 1;
        reads.push(store.get('a').then((r) => (stored[index] = r)));
      });
      await store.update('a', () => statusRecord('a', { state: 'done' }));
      await Promise.all(reads);
      expect(stored.map((r) => r?.state)).toEqual(['done']);
    });

    it('delete removes the record; deleting twice is fine; an update after it starts afresh', async () => {
      const store = await fresh();
      await store.update('a', () => statusRecord('a'));
      await store.delete('a');
      await store.delete('a');
      expect(await store.get('a')).toBeUndefined();
      const seen: (StatusRecord | undefined)[] = [];
      await store.update('a', (current) => {
        seen.push(current);
        return statusRecord('a');
      });
      expect(seen).toEqual([undefined]);
    });

    it('an update queued behind a delete does not see the deleted record', async () => {
      const store = await fresh();
      await store.update('a', () => statusRecord('a'));
      const deleting = store.delete('a');
      const seen: (StatusRecord | undefined)[] = [];
      const updating = store.update('a', (current) => {
        seen.push(current);
        return statusRecord('a', { state: 'done' });
      });
      await Promise.all([deleting, updating]);
      expect(seen).toEqual([undefined]);
    });

    it('a damaged record is an error, not a missing one', async () => {
      const on = await backend();
      const store = storeOn(on);
      await on.damage('a');
      await expect(store.get('a')).rejects.toThrow();
    });

    describe.runIf(options.sharedByInstances)('several instances on one backend', () => {
      it('applies concurrent updates from two instances without losing one', async () => {
        const on = await backend();
        const a = storeOn(on);
        const b = storeOn(on);
        await a.update('a', () => statusRecord('a'));
        await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            (i % 2 ? a : b).update('a', (current) => ({ ...current!, processors: { ...current!.processors, [`p${i}`]: { ok: true, at } } })),
          ),
        );
        expect(Object.keys((await a.get('a'))!.processors)).toHaveLength(60);
      });

      it('tells subscribers about updates from this instance at once and from others through pub/sub', async () => {
        const on = await backend();
        const a = storeOn(on);
        const b = storeOn(on);
        const heard: string[] = [];
        const other: string[] = [];
        const unsubscribe = a.subscribe('x', (r) => heard.push(r.state));
        a.subscribe('y', (r) => other.push(r.state));
        await a.subscribed?.();
        await a.update('x', () => statusRecord('x'));
        expect(heard).toEqual(['processing']); // synchronous for local updates
        await b.update('x', (current) => ({ ...current!, state: 'done' }));
        await expect.poll(() => heard, { timeout: 2_000 }).toEqual(['processing', 'done']);
        unsubscribe();
        await b.update('x', (current) => ({ ...current!, state: 'failed' }));
        await a.update('x', (current) => ({ ...current!, state: 'rejected' }));
        await sleep(100);
        expect(heard).toEqual(['processing', 'done']);
        expect(other).toEqual([]);
        // Another instance (a restart) reads the same record.
        expect(await storeOn(on).get('x')).toEqual(await a.get('x'));
      });
    });
  });
}
