/**
 * The servers the benchmark compares, and how each one is started:
 *
 *   A  this server, with exactly the node arguments of `npm start` (startCommandArgs())
 *   B  the reference: a plain @tus/server 2.x on node:http (plain-tus-server.ts); B' is the
 *      same program run again in every round, so B' ÷ B shows how far a ratio moves by chance
 *   C  the ceiling: the least work that serves the workloads (ceiling-server.ts), file storage only
 *
 * When `npm start` runs compiled JavaScript, B and C run compiled too (esbuild, one file each,
 * in .tmp/ so node_modules resolves; removed at exit): the reference must not pay tsx's
 * start-up and memory when A does not. When `npm start` runs tsx, all three run under tsx.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO_ROOT, startCommandArgs } from '../support/start-command.js';
import { onExit, track } from './process-control.js';
import { GiB } from './units.js';
import type { ChildProcess } from 'node:child_process';

export type StorageKind = 'file' | 's3';
/** X: a variant of this server given with --extra (other node flags, a patched copy). */
export type ServerRole = 'A' | 'X' | 'B' | "B'" | 'C';

export type ServerSpec = Readonly<{
  /** A-file, B-file, B'-file, C-file, A-s3, B-s3, B'-s3. */
  name: string;
  role: ServerRole;
  storage: StorageKind;
  /** node arguments: flags, then the script. */
  nodeArgs: readonly string[];
  /** Whether it puts its objects under S3_PREFIX (the plain @tus/s3-store has no prefix). */
  s3Prefix: boolean;
}>;

export const SERVER_NAMES = ['A-file', 'B-file', 'C-file', 'A-s3', 'B-s3'] as const;

/** Whether `npm start` runs TypeScript through tsx (or compiled JavaScript with plain node). */
export function startsWithTsx(args: readonly string[] = startCommandArgs()): boolean {
  return args.includes('tsx') || args.some((a) => a.startsWith('--import=tsx') || a.startsWith('--loader=tsx')) || /\.[cm]?ts$/.test(args.at(-1) ?? '');
}

/**
 * Makes sure `npm start`'s script exists and is current: startCommandArgs() rebuilds a stale
 * build first, as `npm start`'s prestart does; a script that is still missing is named.
 */
export function prepareStartEntry(): void {
  const entry = path.resolve(REPO_ROOT, startCommandArgs().at(-1) ?? '');
  if (!fs.existsSync(entry)) throw new Error(`npm start runs ${path.relative(REPO_ROOT, entry)}, which does not exist`);
}

/** Compiles one self-contained TypeScript file (no relative imports) to .tmp/bench-build-<pid>/. */
function compile(source: string): string {
  const outDir = path.join(REPO_ROOT, '.tmp', `bench-build-${process.pid}`);
  const out = path.join(outDir, `${path.basename(source, '.ts')}.mjs`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(outDir, { recursive: true });
  onExit(() => fs.rmSync(outDir, { recursive: true, force: true }));
  const esbuild = path.join(REPO_ROOT, 'node_modules/.bin/esbuild');
  const result = spawnSync(esbuild, [source, '--format=esm', '--platform=node', '--target=node20', `--outfile=${out}`, '--log-level=warning'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.status !== 0) throw new Error(`esbuild ${path.relative(REPO_ROOT, source)} failed: ${result.stderr ?? result.error?.message}`);
  return out;
}

function scriptArgs(file: string, tsx: boolean): string[] {
  const source = path.join(REPO_ROOT, 'e2e/bench', file);
  return tsx ? ['--import', 'tsx', source] : [compile(source)];
}

/**
 * The specs for --servers names, each B followed by its twin B', and each A by the --extra
 * variants of this server: 'NAME=[NODE_FLAG...] SCRIPT', e.g. 'A-noheap=server/dist/main.js'
 * (a NAME ending in -s3 runs on S3); they are started and measured like A.
 */
export function serverSpecs(names: readonly string[], extras: readonly string[] = []): ServerSpec[] {
  const tsx = startsWithTsx();
  const specs: ServerSpec[] = [];
  for (const name of names) {
    if (!(SERVER_NAMES as readonly string[]).includes(name)) throw new Error(`--servers: unknown server "${name}" (${SERVER_NAMES.join(', ')})`);
    const [role, storage] = name.split('-') as ['A' | 'B' | 'C', StorageKind];
    if (role === 'A') specs.push({ name, role, storage, nodeArgs: startCommandArgs(), s3Prefix: true }, ...extras.map(extraSpec));
    if (role === 'C') specs.push({ name, role, storage, nodeArgs: scriptArgs('ceiling-server.ts', tsx), s3Prefix: false });
    if (role === 'B') {
      const nodeArgs = scriptArgs('plain-tus-server.ts', tsx);
      specs.push({ name, role, storage, nodeArgs, s3Prefix: false }, { name: `B'-${storage}`, role: "B'", storage, nodeArgs, s3Prefix: false });
    }
  }
  if (extras.length && !names.some((name) => name.startsWith('A-'))) specs.unshift(...extras.map(extraSpec));
  if (new Set(specs.map((s) => s.name)).size !== specs.length) throw new Error('--servers: a server is named twice');
  return specs;
}

function extraSpec(text: string): ServerSpec {
  const eq = text.indexOf('=');
  const name = text.slice(0, eq).trim();
  const nodeArgs = text.slice(eq + 1).trim().split(/\s+/).filter(Boolean);
  const script = nodeArgs.at(-1);
  if (eq <= 0 || !script || script.startsWith('-')) throw new Error(`--extra expects 'NAME=[NODE_FLAG...] SCRIPT', got "${text}"`);
  if (!fs.existsSync(path.resolve(REPO_ROOT, script))) throw new Error(`--extra ${name}: ${script} does not exist`);
  return { name, role: 'X', storage: name.endsWith('-s3') ? 's3' : 'file', nodeArgs, s3Prefix: true };
}

export type RunningServer = Readonly<{ child: ChildProcess; pid: number; url: string; spawnedAt: number; stderrTail: () => string }>;

/**
 * Starts a fresh server process on port 0 and resolves with its URL once it prints
 * `listening on`. Storage settings come from `storageEnv` alone, never from the bench's environment.
 */
export function startServer(spec: ServerSpec, storageDir: string, storageEnv: Record<string, string>, extraNodeArgs: readonly string[] = []): Promise<RunningServer> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== 'STORAGE' && !name.startsWith('S3_')));
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    ...storageEnv,
    HOST: '127.0.0.1',
    PORT: '0',
    STORAGE_DIR: storageDir,
    LOG_LEVEL: 'warn',
    MAX_UPLOAD_SIZE: String(4 * GiB),
    SHUTDOWN_TIMEOUT: '5s',
    // One client playing many: the per-subject limits (one subject here, 127.0.0.1) would measure the limits.
    MAX_UPLOADS_IN_PROGRESS: '0',
    MAX_CREATIONS_PER_MINUTE: '0',
    MAX_UNFINISHED_BYTES: '0',
    MAX_EVENT_STREAMS: '0',
  };
  // Servers get exactly their own flags, not whatever loader the bench itself runs under.
  delete env.NODE_OPTIONS;
  const [flags, script] = [spec.nodeArgs.slice(0, -1), spec.nodeArgs.at(-1)!];
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...flags, ...extraNodeArgs, script], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  const stderrTail = () => stderr.trim();
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`server ${spec.name} did not start within 30 s`)), 30_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
      reject(new Error(`${error.message}${stderrTail() ? `\n--- server stderr ---\n${stderrTail()}` : ''}`));
    };
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`server ${spec.name} exited during startup (code ${code}, signal ${signal})`)));
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      stdout = (stdout + text).slice(-8000);
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.removeListener('error', fail);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      resolve({ child, pid: child.pid!, url: match[1]!, spawnedAt, stderrTail });
    });
  });
}

/** SIGTERM (lets --cpu-prof write its profile), SIGKILL if it lingers. */
export async function stopServer(server: RunningServer): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
