import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createKeyedSequence } from './keyed-sequence.js';
import { withTimeout } from './with-timeout.js';
import { writeFileAtomically } from './write-file-atomically.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('createKeyedSequence', () => {
  it('runs the tasks of one key one at a time, in order, past failures; other keys run alongside', async () => {
    const sequence = createKeyedSequence();
    const log: string[] = [];
    const task = (name: string, fail = false) => async () => {
      log.push(`${name}:start`);
      await tick();
      log.push(`${name}:end`);
      if (fail) throw new Error(name);
      return name;
    };
    const a1 = sequence.run('a', task('a1', true));
    const a2 = sequence.run('a', task('a2'));
    const b1 = sequence.run('b', task('b1'));
    await expect(a1).rejects.toThrow('a1');
    expect(await a2).toBe('a2');
    expect(await b1).toBe('b1');
    expect(log.indexOf('a1:end')).toBeLessThan(log.indexOf('a2:start'));
    expect(log.indexOf('b1:start')).toBeLessThan(log.indexOf('a1:end'));
  });

  it('settled waits for every task of the key so far, and for none when there is none', async () => {
    const sequence = createKeyedSequence();
    let done = false;
    void sequence.run('k', async () => {
      await tick();
      done = true;
    });
    await sequence.settled('k');
    expect(done).toBe(true);
    await sequence.settled('nothing');
  });
});

describe('withTimeout', () => {
  it('answers as the work does, or with the timeout error', async () => {
    expect(await withTimeout(Promise.resolve(1), 50, () => new Error('late'))).toBe(1);
    await expect(withTimeout(new Promise(() => undefined), 10, () => new Error('late'))).rejects.toThrow('late');
  });
});

describe('writeFileAtomically', () => {
  it('replaces the target and leaves no temporary file, also when the write fails', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'atomic-'));
    try {
      const tmp = path.join(dir, 'tmp');
      await fs.mkdir(tmp);
      const target = path.join(dir, 'record.json');
      await writeFileAtomically(target, 'one', tmp);
      await writeFileAtomically(target, 'two', tmp);
      expect(await fs.readFile(target, 'utf8')).toBe('two');
      await expect(writeFileAtomically(path.join(dir, 'missing', 'x'), 'three', tmp)).rejects.toThrow();
      expect(await fs.readdir(tmp)).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
