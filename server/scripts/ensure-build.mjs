#!/usr/bin/env node
/**
 * Keeps server/dist, the compiled server that `npm start`, the Docker image and the tests'
 * server processes run with plain node, current with server/src.
 *
 *   node server/scripts/ensure-build.mjs           rebuild only when stale (npm start, npm test)
 *   node server/scripts/ensure-build.mjs --build   always build, type-checked (npm run build, npm ci)
 *
 * Plain JavaScript on purpose: it must run before anything is compiled, and without tsx.
 *
 * A build writes a stamp (server/dist/.build-stamp.json) with the size and mtime of every input
 * it compiled: the .ts files of server/src but tests, and the two tsconfig files. The build is
 * fresh when the inputs on disk match the stamp exactly, so an edit, a new or deleted file, or
 * a checkout that moves mtimes backwards all count as stale; checking costs one stat per file.
 *
 * A stale rebuild skips the type check (`tsc --noCheck`): it compiles what is there, as tsx
 * did, and `npm run typecheck` reports type errors; `--build` checks types and fails on them.
 * tsc writes into a temporary folder that then replaces server/dist, so a server starting
 * meanwhile never loads half a build; a lock folder keeps concurrent rebuilds (test workers,
 * several terminals) to one at a time.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const SOURCE_DIR = 'server/src';
const BUILD_CONFIG = 'server/tsconfig.build.json';
/** Inputs outside server/src: the build config and the config it extends. */
const CONFIG_FILES = ['tsconfig.json', BUILD_CONFIG];
const DIST_DIR = 'server/dist';
/** The compiled server/src/main.ts: what `npm start` and the image's CMD run. */
export const ENTRY = `${DIST_DIR}/main.js`;
export const STAMP = `${DIST_DIR}/.build-stamp.json`;
const LOCK_DIR = 'server/.dist-lock';
/** A full type-checked build takes about 10 s on two busy cores; waiting for another one, at most this. */
const LOCK_WAIT_MS = 180_000;
/** A lock folder without a pid file this old was left by a process killed while taking it. */
const LOCK_PID_GRACE_MS = 10_000;
const TSC_TIMEOUT_MS = 300_000;

export class BuildError extends Error {}

/** server/src/**\/*.ts without tests: *.test.ts never reaches server/dist, so it never makes it stale. */
function sourceFiles(root, dir = SOURCE_DIR) {
  const files = [];
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const relative = `${dir}/${entry.name}`;
    if (entry.isDirectory()) files.push(...sourceFiles(root, relative));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) files.push(relative);
  }
  return files;
}

/** Every input of the build with its size and mtime, keyed by path relative to the root. */
export function buildInputs(root = REPO_ROOT) {
  const inputs = {};
  for (const file of [...CONFIG_FILES, ...sourceFiles(root)].sort()) {
    const stat = fs.statSync(path.join(root, file));
    inputs[file] = [stat.size, stat.mtimeMs];
  }
  return inputs;
}

function readStamp(root) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, STAMP), 'utf8'));
  } catch {
    return undefined;
  }
}

/** What differs between two input maps, in words: `server/src/app.ts changed and 2 more`. */
function describeChanges(built, now) {
  const changes = [];
  for (const [file, value] of Object.entries(now)) {
    const before = built[file];
    if (!before) changes.push(`${file} is new`);
    else if (before[0] !== value[0] || before[1] !== value[1]) changes.push(`${file} changed`);
  }
  for (const file of Object.keys(built)) if (!(file in now)) changes.push(`${file} was removed`);
  if (changes.length === 0) return undefined;
  return changes.length === 1 ? changes[0] : `${changes[0]} and ${changes.length - 1} more`;
}

/**
 * Whether server/dist holds a build of the current inputs: `{ fresh: true }`, or
 * `{ fresh: false, reason }` naming what is missing or changed.
 */
export function checkBuild(root = REPO_ROOT) {
  if (!fs.existsSync(path.join(root, ENTRY))) return { fresh: false, reason: `${ENTRY} is missing` };
  const stamp = readStamp(root);
  if (!stamp || typeof stamp.inputs !== 'object' || stamp.inputs === null) {
    return { fresh: false, reason: `${STAMP} is missing (${DIST_DIR} was not built by this script)` };
  }
  const reason = describeChanges(stamp.inputs, buildInputs(root));
  return reason === undefined ? { fresh: true } : { fresh: false, reason: `${reason} since the last build` };
}

function tscPath(root) {
  try {
    return createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    throw new BuildError(`${DIST_DIR} needs building, but TypeScript is not installed: run npm ci (it installs devDependencies and builds)`);
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function isAbandoned(lock) {
  let pid;
  try {
    pid = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'));
  } catch {
    try {
      return Date.now() - fs.statSync(lock).mtimeMs > LOCK_PID_GRACE_MS;
    } catch {
      return false; // released meanwhile: the next mkdir will tell
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return error.code === 'ESRCH';
  }
}

/** Runs `fn` holding the build lock; waits, bounded, while another process builds. */
function withLock(root, fn) {
  const lock = path.join(root, LOCK_DIR);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      if (isAbandoned(lock)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new BuildError(`another build has held ${LOCK_DIR} for over ${LOCK_WAIT_MS / 1000} s; remove it if no build is running`);
      sleepSync(200);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** Compiles into a temporary folder, stamps it, then puts it in place of server/dist. */
function compile(root, { typeCheck }) {
  const tsc = tscPath(root);
  const temporary = `server/.dist-tmp-${process.pid}`;
  const old = `server/.dist-old-${process.pid}`;
  // Holding the lock, no other build uses these: what is there was left by a killed build.
  for (const entry of fs.readdirSync(path.join(root, 'server'))) {
    if (/^\.dist-(tmp|old)-\d+$/.test(entry)) fs.rmSync(path.join(root, 'server', entry), { recursive: true, force: true });
  }
  // Taken before tsc reads anything: a file saved during the compile leaves the build stale.
  const inputs = buildInputs(root);
  const args = [tsc, '-p', BUILD_CONFIG, '--outDir', temporary, '--pretty', 'false', ...(typeCheck ? [] : ['--noCheck'])];
  const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: TSC_TIMEOUT_MS });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  if (result.status !== 0 || !fs.existsSync(path.join(root, temporary, 'main.js'))) {
    fs.rmSync(path.join(root, temporary), { recursive: true, force: true });
    const how = result.error ? result.error.message : `exit ${result.status ?? result.signal}`;
    throw new BuildError(`tsc -p ${BUILD_CONFIG} failed (${how}); ${DIST_DIR} is unchanged\n${output}`);
  }
  const stamp = { inputs, typeChecked: typeCheck, builtAt: new Date().toISOString() };
  fs.writeFileSync(path.join(root, temporary, path.basename(STAMP)), `${JSON.stringify(stamp)}\n`);
  // Two renames: server/dist is absent for an instant only, never half-written.
  const dist = path.join(root, DIST_DIR);
  const hadDist = fs.existsSync(dist);
  if (hadDist) fs.renameSync(dist, path.join(root, old));
  fs.renameSync(path.join(root, temporary), dist);
  if (hadDist) fs.rmSync(path.join(root, old), { recursive: true, force: true });
}

/**
 * Builds server/dist unless it is fresh. `build: true` always builds, with the type check.
 * Says in one line (through `log`) why it rebuilds; throws BuildError when it cannot.
 */
export function ensureBuild({ root = REPO_ROOT, build = false, log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const before = build ? undefined : checkBuild(root);
  if (before?.fresh) return { rebuilt: false };
  return withLock(root, () => {
    const now = build ? undefined : checkBuild(root);
    if (now?.fresh) return { rebuilt: false }; // another process built it while we waited
    const started = Date.now();
    if (now) log(`ensure-build: ${now.reason}: recompiling ${DIST_DIR} (tsc, no type check; npm run typecheck checks types)`);
    compile(root, { typeCheck: build });
    if (build) log(`ensure-build: compiled ${DIST_DIR} (type-checked) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { rebuilt: true, reason: now?.reason, ms: Date.now() - started };
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args.some((arg) => arg !== '--build')) {
    process.stderr.write('usage: node server/scripts/ensure-build.mjs [--build]\n');
    process.exit(2);
  }
  try {
    ensureBuild({ build: args.includes('--build') });
  } catch (error) {
    process.stderr.write(`ensure-build: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
