import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runServerToExit, Scope } from './support/server-process.js';

/** A misconfigured server refuses to start: exit code 1 and a message naming the variable. */
describe('configuration errors at startup', () => {
  const scope = new Scope();
  afterAll(() => scope.dispose());

  // [variable, value, something the message must also say]
  it.each([
    ['PORT', 'abc', '"abc"'],
    ['MAX_UPLOAD_SIZE', 'lots', '"lots"'],
    ['IDLE_TIMEOUT', '30', 'unit'],
    ['LOG_LEVEL', 'loud', 'info'],
  ])('%s=%s exits with code 1 and names the variable on stderr', async (name, value, hint) => {
    const result = await runServerToExit({ [name]: value });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toContain(name);
    expect(result.stderr).toContain(hint);
    expect(result.stdout).not.toContain('listening on');
  });

  it('names every wrong variable at once', async () => {
    const result = await runServerToExit({ PORT: 'abc', MAX_UPLOAD_SIZE: 'lots' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('PORT');
    expect(result.stderr).toContain('MAX_UPLOAD_SIZE');
  });

  it('exits with code 1 naming STORAGE_DIR when the directory cannot be used', async () => {
    const dir = await scope.tempDir();
    const notADirectory = path.join(dir, 'a-file');
    await fsp.writeFile(notADirectory, 'not a directory');
    const result = await runServerToExit({ STORAGE_DIR: path.join(notADirectory, 'uploads') });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('STORAGE_DIR');
    expect(result.stdout).not.toContain('listening on');
  });
});
