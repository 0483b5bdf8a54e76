import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../config.js';
import { HttpError } from '../errors.js';
import { createFreeSpace } from './free-space.js';

const MiB = 1024 ** 2;

/** A statfs that reports `free()` bytes and counts its calls, and a clock the test moves. */
function fakeDisk(free: () => number) {
  const calls: string[] = [];
  let time = 1_000_000;
  return {
    calls,
    now: () => time,
    advance: (ms: number) => {
      time += ms;
    },
    statfs: async (dir: string) => {
      calls.push(dir);
      return { bavail: free() / 4096, bsize: 4096 };
    },
  };
}

describe('createFreeSpace', () => {
  it('measures the real directory with statfs', async () => {
    const space = createFreeSpace({ directory: os.tmpdir(), minimumBytes: 1 });
    const bytes = await space.available();
    expect(bytes).toBeGreaterThan(0);
    expect(await space.isLow()).toBe(false);
  });

  it('measures once per interval, however many ask', async () => {
    const disk = fakeDisk(() => 10 * MiB);
    const space = createFreeSpace({ directory: '/data', minimumBytes: MiB, cacheMs: 1_000, statfs: disk.statfs, now: disk.now });
    await Promise.all(Array.from({ length: 50 }, () => space.isLow()));
    expect(disk.calls).toHaveLength(1);
    disk.advance(999);
    await space.isLow();
    expect(disk.calls).toHaveLength(1);
    disk.advance(1);
    await space.isLow();
    expect(disk.calls).toHaveLength(2);
  });

  it('is low below the minimum, and refuses a new upload with 507', async () => {
    let free = 10 * MiB;
    const disk = fakeDisk(() => free);
    const space = createFreeSpace({ directory: '/data', minimumBytes: 4 * MiB, statfs: disk.statfs, now: disk.now });
    expect(await space.isLow()).toBe(false);
    await space.refuseNewUploadIfLow();
    free = 4 * MiB - 4096;
    disk.advance(1_000);
    expect(await space.isLow()).toBe(true);
    const refused = await space.refuseNewUploadIfLow().then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(HttpError);
    expect((refused as HttpError).status).toBe(507);
    expect((refused as HttpError).code).toBe('ERR_STORAGE_FULL');
    expect((refused as HttpError).headers['Retry-After']).toBe('30');
    expect((refused as HttpError).message).toContain('MIN_FREE_SPACE, 4 MiB');
    // Exactly the minimum is enough.
    free = 4 * MiB;
    disk.advance(1_000);
    expect(await space.isLow()).toBe(false);
  });

  it('never measures when the minimum is 0', async () => {
    const disk = fakeDisk(() => 0);
    const space = createFreeSpace({ directory: '/data', minimumBytes: 0, statfs: disk.statfs, now: disk.now });
    expect(await space.isLow()).toBe(false);
    await space.refuseNewUploadIfLow();
    expect(disk.calls).toEqual([]);
  });

  it('measures a directory not made yet at its nearest parent (S3 part buffers before the first part)', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'free-space-'));
    try {
      const space = createFreeSpace({ directory: path.join(root, '.s3-parts', 'deeper'), minimumBytes: 1 });
      expect(await space.available()).toBeGreaterThan(0);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });

  it('lets uploads in when free space cannot be measured (the readiness probe reports a broken directory)', async () => {
    const space = createFreeSpace({
      directory: '/data',
      minimumBytes: MiB,
      statfs: async () => {
        throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      },
    });
    expect(await space.available()).toBeUndefined();
    expect(await space.isLow()).toBe(false);
  });
});

describe('MIN_FREE_SPACE', () => {
  it('defaults to 1 GiB, takes sizes with units, and 0 to disable', () => {
    expect(parseConfig({}).freeSpace).toEqual({ minimumBytes: 1024 ** 3 });
    expect(parseConfig({ MIN_FREE_SPACE: '500MB' }).freeSpace.minimumBytes).toBe(500 * 1000 ** 2);
    expect(parseConfig({ MIN_FREE_SPACE: '0' }).freeSpace.minimumBytes).toBe(0);
  });

  it('refuses what is not a size', () => {
    expect(() => parseConfig({ MIN_FREE_SPACE: 'lots' })).toThrow(ConfigError);
    expect(() => parseConfig({ MIN_FREE_SPACE: '-1GiB' })).toThrow(/MIN_FREE_SPACE/);
  });
});
