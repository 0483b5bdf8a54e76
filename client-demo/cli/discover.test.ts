import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverFiles, type DiscoverOptions } from './discover.js';

describe('discoverFiles', () => {
  let dir: string;
  let options: DiscoverOptions;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-upload-discover-'));
    options = { cwd: dir, includeHidden: false, followSymlinks: false };
    const write = async (name: string, text: string) => {
      await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await fs.writeFile(path.join(dir, name), text);
    };
    await write('single.mp4', 'single');
    await write('videos/b.mp4', 'bb');
    await write('videos/a.mp4', 'a');
    await write('videos/2024/c.mov', 'ccc');
    await write('videos/.DS_Store', 'hidden');
    await write('videos/.cache/x.bin', 'hidden folder');
    await fs.symlink(path.join(dir, 'single.mp4'), path.join(dir, 'videos', 'link.mp4'));
    await fs.symlink(path.join(dir, 'videos'), path.join(dir, 'videos', '2024', 'loop'));
  });
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it('takes a file as it is', async () => {
    const found = await discoverFiles(['single.mp4'], options);
    expect(found.problems).toEqual([]);
    expect(found.files).toEqual([expect.objectContaining({ path: path.join(dir, 'single.mp4'), name: 'single.mp4', relativePath: undefined, size: 6 })]);
    expect(found.files[0]?.mtimeMs).toBeGreaterThan(0);
  });

  it('walks a folder in name order, skipping hidden entries and symbolic links', async () => {
    const found = await discoverFiles(['videos'], options);
    expect(found.files.map((f) => f.name)).toEqual(['videos/2024/c.mov', 'videos/a.mp4', 'videos/b.mp4']);
    expect(found.files.map((f) => f.relativePath)).toEqual(['videos/2024/c.mov', 'videos/a.mp4', 'videos/b.mp4']);
    expect(found.skipped).toEqual({ hidden: 2, symlinks: 2, special: 0 });
  });

  it('includes hidden entries and follows links when asked, without looping', async () => {
    const found = await discoverFiles(['videos'], { ...options, includeHidden: true, followSymlinks: true });
    expect(found.files.map((f) => f.name)).toEqual(['videos/.DS_Store', 'videos/.cache/x.bin', 'videos/2024/c.mov', 'videos/a.mp4', 'videos/b.mp4', 'videos/link.mp4']);
    // videos/2024/loop points back at videos/: skipped, not walked forever.
    expect(found.skipped.symlinks).toBe(1);
  });

  it('uploads a file named twice once', async () => {
    const found = await discoverFiles(['single.mp4', path.join(dir, 'single.mp4'), 'videos/a.mp4', 'videos'], options);
    expect(found.files.map((f) => f.name)).toEqual(['single.mp4', 'a.mp4', 'videos/2024/c.mov', 'videos/b.mp4']);
  });

  it('reports what does not exist or is not a file', async () => {
    const found = await discoverFiles(['missing.mp4', 'single.mp4', '/dev/null'], options);
    expect(found.problems).toEqual(['missing.mp4: no such file or directory', '/dev/null: not a regular file or folder']);
    expect(found.files).toHaveLength(1);
  });
});
