import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The node arguments of `npm start` (package.json: `node <flags> --import tsx server/src/main.ts`),
 * so tests and benchmarks run the server exactly as users do, without npm in between.
 */
export function startCommandArgs(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const [command, ...args] = pkg.scripts.start.trim().split(/\s+/);
  if (command !== 'node') throw new Error(`npm start should run node directly, got "${pkg.scripts.start}"`);
  return args;
}

/** The node flags of `npm start` alone (before `--import`). */
export function startNodeFlags(): string[] {
  const args = startCommandArgs();
  return args.slice(0, args.indexOf('--import'));
}
