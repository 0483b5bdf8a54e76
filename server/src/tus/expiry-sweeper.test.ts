import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryLocker } from '@tus/server';
import { Upload } from '@tus/utils';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileStorage } from '../storage/file-storage.js';
import type { UploadStorage } from '../storage/index.js';
import { backdateUpload, fileExists, waitFor } from '../testing/http-test-helpers.js';
import { createExpirySweeper, type ExpirySweeper } from './expiry-sweeper.js';

const HOUR = 3_600_000;

let dir: string;
let storage: UploadStorage;
let locker: MemoryLocker;
let logLines: Record<string, unknown>[];
let sweepers: ExpirySweeper[];

function logger() {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return pino({ level: 'info' }, sink);
}

function sweeper(expiryMs = 24 * HOUR, intervalMs = 60_000): ExpirySweeper {
  const created = createExpirySweeper({ storage, locker, logger: logger(), expiryMs, intervalMs });
  sweepers.push(created);
  return created;
}

/** Creates an upload through the datastore, with `written` bytes of `size`, `ageMs` old. */
async function upload(id: string, { size, written = 0, ageMs = 0 }: { size?: number; written?: number; ageMs?: number }): Promise<void> {
  await storage.datastore.create(new Upload({ id, size, offset: 0 }));
  if (written > 0) await fs.writeFile(path.join(dir, id), Buffer.alloc(written, 1));
  if (ageMs > 0) await backdateUpload(dir, id, ageMs);
}

const present = (id: string) => fileExists(path.join(dir, id));

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-sweeper-'));
  storage = await createFileStorage({ directory: dir, uploadExpiryMs: 24 * HOUR });
  locker = new MemoryLocker();
  logLines = [];
  sweepers = [];
});

afterEach(async () => {
  for (const s of sweepers) await s.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('sweepOnce', () => {
  it('removes unfinished uploads past the expiry and nothing else', async () => {
    await upload('old-unfinished', { size: 10, written: 3, ageMs: 25 * HOUR });
    await upload('old-empty', { size: 10, ageMs: 25 * HOUR });
    await upload('old-deferred', { size: undefined, written: 5, ageMs: 25 * HOUR });
    await upload('old-finished', { size: 4, written: 4, ageMs: 30 * 24 * HOUR });
    await upload('old-zero-length', { size: 0, ageMs: 30 * 24 * HOUR });
    await upload('young-unfinished', { size: 10, written: 3, ageMs: 23 * HOUR });

    expect(await sweeper().sweepOnce()).toBe(3);

    for (const id of ['old-unfinished', 'old-empty', 'old-deferred']) {
      expect(await present(id)).toBe(false);
      expect(await present(`${id}.json`)).toBe(false);
      expect(await fileExists(path.join(dir, '.expired', id))).toBe(true);
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE', status: 410 });
    }
    for (const id of ['old-finished', 'old-zero-length', 'young-unfinished']) {
      expect(await present(id)).toBe(true);
      expect(await present(`${id}.json`)).toBe(true);
      expect(await fileExists(path.join(dir, '.expired', id))).toBe(false);
    }
    const removed = logLines.filter((line) => line.msg === 'expired unfinished upload removed').map((line) => line.uploadId);
    expect(removed.sort()).toEqual(['old-deferred', 'old-empty', 'old-unfinished']);
  });

  it('removes nothing when expiry is disabled', async () => {
    await upload('ancient', { size: 10, written: 1, ageMs: 365 * 24 * HOUR });
    const disabled = sweeper(0);
    expect(await disabled.sweepOnce()).toBe(0);
    disabled.start();
    await sleep(20);
    expect(await present('ancient')).toBe(true);
  });

  it('a second sweep finds nothing more', async () => {
    await upload('old', { size: 10, ageMs: 25 * HOUR });
    const s = sweeper();
    expect(await s.sweepOnce()).toBe(1);
    expect(await s.sweepOnce()).toBe(0);
  });

  it('concurrent callers share the sweep in progress', async () => {
    await upload('old', { size: 10, ageMs: 25 * HOUR });
    const s = sweeper();
    const first = s.sweepOnce();
    const second = s.sweepOnce();
    expect(second).toBe(first);
    expect(await first).toBe(1);
  });

  it('skips an upload it cannot read and carries on', async () => {
    await upload('broken', { size: 10, ageMs: 25 * HOUR });
    await fs.writeFile(path.join(dir, 'broken.json'), '{ not json');
    await upload('old', { size: 10, ageMs: 25 * HOUR });
    expect(await sweeper().sweepOnce()).toBe(1);
    expect(await present('old')).toBe(false);
    expect(await present('broken')).toBe(true);
    expect(logLines.some((line) => line.msg === 'expiry sweep skipped an upload' && line.uploadId === 'broken')).toBe(true);
  });

  it('waits for the upload lock before removing, and asks the holder to release it', async () => {
    await upload('busy', { size: 10, written: 2, ageMs: 25 * HOUR });
    const held = locker.newLock('busy');
    let releaseRequested = false;
    await held.lock(new AbortController().signal, () => {
      releaseRequested = true;
    });

    const sweep = sweeper().sweepOnce();
    await waitFor(() => releaseRequested, { timeoutMs: 2_000 });
    await sleep(100);
    expect(await present('busy')).toBe(true);

    await held.unlock();
    expect(await sweep).toBe(1);
    expect(await present('busy')).toBe(false);
  });

  it('does not remove an upload that finished while it waited for the lock', async () => {
    await upload('finishing', { size: 4, written: 2, ageMs: 25 * HOUR });
    const held = locker.newLock('finishing');
    await held.lock(new AbortController().signal, () => undefined);
    const sweep = sweeper().sweepOnce();
    await sleep(50);
    await fs.writeFile(path.join(dir, 'finishing'), Buffer.alloc(4, 1));
    await held.unlock();
    expect(await sweep).toBe(0);
    expect(await present('finishing')).toBe(true);
  });
});

describe('start and stop', () => {
  it('sweeps on its interval without anyone calling it', async () => {
    await upload('old', { size: 10, ageMs: 25 * HOUR });
    const s = sweeper(24 * HOUR, 30);
    s.start();
    s.start(); // idempotent
    await waitFor(async () => !(await present('old')), { timeoutMs: 3_000 });
    await s.stop();
    // Stopped: a new expired upload stays.
    await upload('later', { size: 10, ageMs: 25 * HOUR });
    await sleep(150);
    expect(await present('later')).toBe(true);
  });

  it('stop waits for a sweep in progress', async () => {
    await upload('busy', { size: 10, ageMs: 25 * HOUR });
    const held = locker.newLock('busy');
    await held.lock(new AbortController().signal, () => undefined);
    const s = sweeper();
    const sweep = s.sweepOnce();
    let stopped = false;
    const stopping = s.stop().then(() => {
      stopped = true;
    });
    await sleep(100);
    expect(stopped).toBe(false);
    await held.unlock();
    await stopping;
    expect(stopped).toBe(true);
    expect(await sweep).toBe(1);
  });
});

describe('what a sweep reads', () => {
  it('only the uploads that may be unfinished: processed (settled) uploads cost no read', async () => {
    for (let i = 0; i < 20; i += 1) {
      await upload(`processed-${i}`, { size: 4, written: 4, ageMs: 30 * 24 * HOUR });
      await storage.markSettled(`processed-${i}`);
    }
    await upload('old', { size: 10, ageMs: 25 * HOUR });
    const read: string[] = [];
    const base = storage;
    storage = { ...base, getUpload: (id) => (read.push(id), base.getUpload(id)) };
    expect(await sweeper().sweepOnce()).toBe(1);
    // Read once to decide, once more under the lock.
    expect(read).toEqual(['old', 'old']);
    expect(await present('old')).toBe(false);
  });
});

describe('FINISHED_UPLOAD_RETENTION', () => {
  function retaining(retentionMs: number, expiryMs = 24 * HOUR, removed: string[] = []): ExpirySweeper {
    const created = createExpirySweeper({ storage, locker, logger: logger(), expiryMs, intervalMs: 60_000, finishedRetentionMs: retentionMs, onRemoved: (id) => removed.push(id) });
    sweepers.push(created);
    return created;
  }

  it('removes finished uploads older than the retention as expiry removes unfinished ones (410 afterwards), and tells who asked', async () => {
    await upload('finished-old', { size: 4, written: 4, ageMs: 8 * 24 * HOUR });
    await upload('finished-processed-old', { size: 4, written: 4, ageMs: 8 * 24 * HOUR });
    await storage.markSettled('finished-processed-old');
    await upload('zero-length-old', { size: 0, ageMs: 8 * 24 * HOUR });
    await upload('finished-young', { size: 4, written: 4, ageMs: 6 * 24 * HOUR });
    await upload('unfinished-old', { size: 10, written: 3, ageMs: 8 * 24 * HOUR });
    const removed: string[] = [];

    // Expiry off: only the retention applies, and an unfinished upload is not its business.
    expect(await retaining(7 * 24 * HOUR, 0, removed).sweepOnce()).toBe(3);

    for (const id of ['finished-old', 'finished-processed-old', 'zero-length-old']) {
      expect(await present(id)).toBe(false);
      await expect(storage.getUpload(id)).rejects.toMatchObject({ code: 'ERR_UPLOAD_GONE', status: 410 });
    }
    for (const id of ['finished-young', 'unfinished-old']) expect(await present(id)).toBe(true);
    expect(removed.sort()).toEqual(['finished-old', 'finished-processed-old', 'zero-length-old']);
    expect(logLines.filter((line) => line.msg === 'finished upload past its retention removed')).toHaveLength(3);
  });

  it('with expiry and retention both on, each rule removes its own uploads in one sweep', async () => {
    await upload('finished-old', { size: 4, written: 4, ageMs: 8 * 24 * HOUR });
    await upload('unfinished-old', { size: 10, written: 3, ageMs: 25 * HOUR });
    await upload('unfinished-young', { size: 10, written: 3, ageMs: 1 * HOUR });
    expect(await retaining(7 * 24 * HOUR).sweepOnce()).toBe(2);
    expect(await present('finished-old')).toBe(false);
    expect(await present('unfinished-old')).toBe(false);
    expect(await present('unfinished-young')).toBe(true);
  });

  it('off by default (0): finished uploads are never read, however old', async () => {
    await upload('finished-ancient', { size: 4, written: 4, ageMs: 365 * 24 * HOUR });
    await storage.markSettled('finished-ancient');
    const read: string[] = [];
    const base = storage;
    storage = { ...base, getUpload: (id) => (read.push(id), base.getUpload(id)) };
    expect(await retaining(0).sweepOnce()).toBe(0);
    expect(read).toEqual([]);
    expect(await present('finished-ancient')).toBe(true);
  });
});
