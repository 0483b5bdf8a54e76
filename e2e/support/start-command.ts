import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuild } from '../../server/scripts/ensure-build.mjs';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `npm start` split into node's flags and the compiled entry it runs. */
export type StartCommand = Readonly<{ nodeFlags: readonly string[]; entry: string }>;

/**
 * Reads `npm start` (package.json: `node [flags] server/dist/main.js`): plain node running
 * compiled JavaScript, no loader. Anything else fails here, so tests cannot drift from it.
 */
export function parseStartScript(script: string): StartCommand {
  const [command, ...args] = script.trim().split(/\s+/);
  const loader = args.find((arg) => /^--(import|loader|experimental-loader|require)\b|^-r$/.test(arg));
  if (loader) throw new Error(`npm start should run compiled JavaScript with plain node, but it loads ${loader} ("${script}")`);
  const entry = args.at(-1) ?? '';
  const nodeFlags = args.slice(0, -1);
  if (command !== 'node' || !entry.endsWith('.js') || entry.startsWith('-') || nodeFlags.some((flag) => !flag.startsWith('-'))) {
    throw new Error(`npm start should be "node [flags] <compiled entry>.js", got "${script}"`);
  }
  return { nodeFlags, entry };
}

function startCommand(): StartCommand {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  return parseStartScript(pkg.scripts.start);
}

/**
 * The compiled entry of `npm start` (`server/dist/main.js`, relative to REPO_ROOT), rebuilt
 * first when server/src changed since the last build (as `npm start`'s prestart does), so a
 * test never runs an old build; a build that fails throws with tsc's output.
 */
export function startEntry(): string {
  const { entry } = startCommand();
  ensureBuild();
  if (!fs.existsSync(path.join(REPO_ROOT, entry))) throw new Error(`${entry}, the entry npm start runs, is not what server/tsconfig.build.json builds`);
  return entry;
}

/**
 * The node arguments of `npm start` (flags, then the compiled entry, rebuilt when stale), so
 * tests and benchmarks run the server exactly as users do, without npm in between.
 */
export function startCommandArgs(): string[] {
  return [...startNodeFlags(), startEntry()];
}

/** The node flags of `npm start` alone (without the entry). */
export function startNodeFlags(): string[] {
  return [...startCommand().nodeFlags];
}
