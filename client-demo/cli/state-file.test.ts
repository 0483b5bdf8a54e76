import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ENTRY_MAX_AGE_MS, fingerprintOf, StateFile, type FileIdentity, type StateEntry } from './state-file.js';

const identity: FileIdentity = { path: '/videos/movie.mp4', size: 1024, mtimeMs: 1700000000000.5, endpoint: 'http://localhost:8080/files/' };

function entry(uploadUrl: string, creationTime = new Date().toISOString()): StateEntry {
  return { ...identity, uploadUrl, parallelUploadUrls: null, metadata: { filename: 'movie.mp4' }, creationTime };
}

describe('fingerprintOf', () => {
  it('is stable for the same file and endpoint', () => {
    expect(fingerprintOf(identity)).toBe(fingerprintOf({ ...identity }));
    expect(fingerprintOf(identity)).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['path', { path: '/videos/other.mp4' }],
    ['size', { size: 1025 }],
    ['modification time', { mtimeMs: 1700000000001 }],
    ['endpoint', { endpoint: 'http://localhost:9090/files/' }],
  ])('changes with the %s', (_what, change) => {
    expect(fingerprintOf({ ...identity, ...change })).not.toBe(fingerprintOf(identity));
  });
});

describe('StateFile', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-upload-state-'));
    file = path.join(dir, 'nested', 'state.json');
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('creates its folder, keeps entries by fingerprint and removes them', async () => {
    const state = new StateFile(file);
    await state.ensureWritable();
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual({ version: 1, uploads: {} });

    await state.put('fp1', entry('http://localhost:8080/files/1'));
    expect(await state.find('fp1')).toMatchObject({ uploadUrl: 'http://localhost:8080/files/1', path: '/videos/movie.mp4' });
    // Another process sees it: nothing is cached.
    expect(await new StateFile(file).find('fp1')).toBeDefined();
    await state.remove('fp1');
    expect(await state.find('fp1')).toBeUndefined();
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
  });

  it('leaves no temporary or lock files behind', async () => {
    const state = new StateFile(file);
    await Promise.all([state.put('a', entry('u1')), state.put('b', entry('u2')), state.remove('a')]);
    expect(await fs.readdir(path.dirname(file))).toEqual(['state.json']);
    expect(Object.keys(await state.all())).toEqual(['b']);
  });

  it('loses no change when two processes write at once (lock file, fresh read before each write)', async () => {
    const one = new StateFile(file);
    const two = new StateFile(file);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? one : two).put(`fp${i}`, entry(`u${i}`))));
    expect(Object.keys(await one.all()).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `fp${i}`).sort());
  });

  it('breaks a lock left by a process that died', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const lock = `${file}.lock`;
    await fs.writeFile(lock, '12345');
    const old = new Date(Date.now() - 60_000);
    await fs.utimes(lock, old, old);
    await new StateFile(file).put('fp', entry('u'));
    expect(await new StateFile(file).find('fp')).toBeDefined();
  });

  it('moves a damaged file aside, says so, and starts afresh', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, '{"version":1,"uploads":{"fp":');
    const moved: string[] = [];
    const state = new StateFile(file, { onCorrupt: (to) => moved.push(to) });
    expect(await state.find('fp')).toBeUndefined();
    expect(moved).toHaveLength(1);
    expect(await fs.readFile(moved[0] ?? '', 'utf8')).toBe('{"version":1,"uploads":{"fp":');
    await state.put('fp', entry('u'));
    expect(await state.find('fp')).toBeDefined();
  });

  it('drops entries of uploads started more than 30 days ago when it writes', async () => {
    let now = Date.now();
    const state = new StateFile(file, {}, () => now);
    await state.put('old', entry('u1', new Date(now).toISOString()));
    now += ENTRY_MAX_AGE_MS + 1000;
    await state.put('new', entry('u2', new Date(now).toISOString()));
    expect(Object.keys(await state.all())).toEqual(['new']);
  });

  it('is tus-js-client URL storage: one entry per fingerprint, the fingerprint as key', async () => {
    const state = new StateFile(file);
    const errors: unknown[] = [];
    const storage = state.urlStorageFor(identity, (error) => errors.push(error));
    const fp = fingerprintOf(identity);
    expect(await storage.findUploadsByFingerprint(fp)).toEqual([]);
    const key = await storage.addUpload(fp, { size: 1024, metadata: { filename: 'movie.mp4' }, creationTime: 'x', urlStorageKey: '', uploadUrl: 'http://localhost:8080/files/abc', parallelUploadUrls: null });
    expect(key).toBe(fp);
    const [found] = await storage.findUploadsByFingerprint(fp);
    expect(found).toMatchObject({ urlStorageKey: fp, uploadUrl: 'http://localhost:8080/files/abc', size: 1024, parallelUploadUrls: null });
    expect(await storage.findAllUploads()).toHaveLength(1);
    expect((await state.find(fp))?.endpoint).toBe(identity.endpoint);
    await storage.removeUpload(fp);
    expect(await storage.findUploadsByFingerprint(fp)).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('reports, instead of throwing into tus-js-client, when it cannot save', async () => {
    await fs.writeFile(path.join(dir, 'nested'), 'a file where the folder should be');
    const errors: unknown[] = [];
    const storage = new StateFile(file).urlStorageFor(identity, (error) => errors.push(error));
    await expect(storage.addUpload('fp', { size: 1, metadata: {}, creationTime: 'x', urlStorageKey: '', uploadUrl: 'u', parallelUploadUrls: null })).resolves.toBe('fp');
    expect(errors).toHaveLength(1);
  });
});
