/**
 * Runs docker/Dockerfile's install, build and start steps without a Docker engine, as read
 * from the Dockerfile itself: each stage gets a clean temporary root, the COPY instructions
 * copy what the build context (filtered by Dockerfile.dockerignore) or an earlier stage would
 * give them, the `npm ci` and `npm run build` RUN steps run as written, and the final stage's
 * CMD starts with its ENV. The image must run compiled JavaScript with plain node (no
 * TypeScript source or loader in it); then the HEALTHCHECK command must pass, a small tus
 * upload must round-trip, the browser demo at / and the files it loads must answer 200, and
 * SIGTERM must end the server with exit code 0. A dependency the server needs but only
 * devDependencies list fails here, as it would in the image: the runtime stage's clean folder
 * never had devDependencies (only the build stage has them, to compile).
 *
 *   node --import tsx docker/run-without-docker.ts     (e2e/docker-steps.test.ts runs it in npm test)
 *
 * Outside Docker, by necessity: the server binds 127.0.0.1 on a free port, VOLUME paths and
 * HOME live in the temporary root, and the script signals node itself (tini, the
 * ENTRYPOINT, only forwards signals). RUN steps that only shape the image (apt-get, chown)
 * are listed below and skipped; any other RUN step fails the script until it is taught here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cmdOf,
  copiesOf,
  dockerignore,
  entrypointOf,
  envOf,
  healthcheckOf,
  parseDockerfile,
  splitFlags,
  volumesOf,
  type Stage,
} from './dockerfile.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DOCKERFILE = path.join(REPO, 'docker', 'Dockerfile');
const DOCKERIGNORE = path.join(REPO, 'docker', 'Dockerfile.dockerignore');

const INSTALL_TIMEOUT_MS = 150_000;
const READY_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** An idle server drains at once; SHUTDOWN_TIMEOUT (30 s) only matters with uploads in flight. */
const STOP_TIMEOUT_MS = 15_000;

/** RUN commands that shape the image but change nothing about installing or starting the server. */
const IMAGE_ONLY: readonly (readonly [RegExp, string])[] = [
  [/^apt-get (update|install)\b/, 'system packages (tini: here the script signals node itself)'],
  [/^rm -rf \/var\/lib\/apt\/lists\/\*$/, "apt's package lists"],
  [/^chown -R node:node \S+$/, 'ownership for the non-root user (here the current user owns everything)'],
];

const children = new Set<ChildProcess>();
let tempRoot: string | undefined;

const log = (message: string) => process.stdout.write(`[docker-steps] ${message}\n`);

class StepError extends Error {}

/** Kills what this script started, by PID, and removes its temporary folder. */
function cleanUp(): void {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  if (tempRoot) fs.rmSync(tempRoot, { recursive: true, force: true });
  tempRoot = undefined;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping`);
    cleanUp();
    process.exit(1);
  });
}

/**
 * What a `docker build` step sees of the environment: the caller's, without what npm or a
 * test runner put there. npm_config_local_prefix in particular would send `npm ci` back
 * into the repository's own node_modules.
 */
function buildEnv(stageEnv: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|VITEST)/i.test(key) || ['INIT_CWD', 'NODE_ENV', 'NODE_OPTIONS', 'NODE_PATH'].includes(key)) continue;
    env[key] = value;
  }
  return { ...env, ...stageEnv };
}

type Finished = { code: number | null; signal: NodeJS.Signals | null; output: string };

function run(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      reject(new StepError(`${command} ${args.join(' ')} took longer than ${options.timeoutMs} ms\n${output}`));
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new StepError(`cannot run ${command}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, output });
    });
  });
}

/** Docker's `node` is the image's; here it is the node running this script. */
const executable = (name: string) => (name === 'node' ? process.execPath : name);

/** A stage's filesystem: container paths map into `<root>`. */
type StageFs = { root: string; workdir: string; env: Record<string, string>; volumes: string[] };

const inStage = (fsys: StageFs, containerPath: string) => path.join(fsys.root, path.posix.resolve(fsys.workdir, containerPath));

/** Files of the build context under `source` that the .dockerignore lets through. */
function contextFiles(source: string, ignored: (p: string) => boolean): string[] {
  const relative = path.posix.normalize(source).replace(/^\.\/|\/$/g, '');
  const absolute = path.join(REPO, relative);
  if (!fs.existsSync(absolute)) throw new StepError(`COPY ${source}: not in the build context`);
  const files = fs.statSync(absolute).isDirectory()
    ? (fs.readdirSync(absolute, { recursive: true }) as string[])
        .map((entry) => path.posix.join(relative, entry.split(path.sep).join('/')))
        .filter((file) => fs.statSync(path.join(REPO, file)).isFile())
    : [relative];
  const kept = files.filter((file) => !ignored(file));
  if (kept.length === 0) throw new StepError(`COPY ${source}: Dockerfile.dockerignore leaves nothing of it in the build context`);
  return kept;
}

function copyStep(fsys: StageFs, stages: ReadonlyMap<string, StageFs>, copy: ReturnType<typeof copiesOf>[number], ignored: (p: string) => boolean): void {
  const destination = inStage(fsys, copy.dest);
  const intoDirectory = copy.dest.endsWith('/') || copy.sources.length > 1;
  for (const source of copy.sources) {
    if (copy.from !== undefined) {
      const from = stages.get(copy.from);
      if (!from) throw new StepError(`COPY --from=${copy.from}: no earlier stage of that name`);
      const target = intoDirectory ? path.join(destination, path.basename(source)) : destination;
      fs.cpSync(path.join(from.root, source), target, { recursive: true, verbatimSymlinks: true });
      continue;
    }
    const files = contextFiles(source, ignored);
    const base = path.posix.normalize(source).replace(/^\.\/|\/$/g, '');
    const isDirectory = fs.statSync(path.join(REPO, base)).isDirectory();
    for (const file of files) {
      // A directory's contents go into the destination; a file goes into it (dir) or becomes it.
      const target = isDirectory ? path.join(destination, path.posix.relative(base, file)) : intoDirectory ? path.join(destination, path.posix.basename(file)) : destination;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(path.join(REPO, file), target);
    }
  }
}

async function runStep(fsys: StageFs, command: string, line: string): Promise<void> {
  for (const part of command.split(/\s*&&\s*/)) {
    const skipped = IMAGE_ONLY.find(([pattern]) => pattern.test(part));
    if (skipped) {
      log(`skip  RUN ${part}  (image only: ${skipped[1]})`);
      continue;
    }
    const mkdir = /^mkdir -p (\S+)$/.exec(part);
    if (mkdir?.[1]) {
      fs.mkdirSync(inStage(fsys, mkdir[1]), { recursive: true });
      log(`run   RUN ${part}`);
      continue;
    }
    const [program, ...args] = part.split(/\s+/);
    // npm ci installs, npm run build compiles server/src (the build stage): both as written.
    const known = args[0] === 'ci' || (args[0] === 'run' && args[1] === 'build' && args.length === 2);
    if (program !== 'npm' || !known || args.some((a) => /["'$`\\]/.test(a))) {
      throw new StepError(`RUN ${part} (Dockerfile line ${line}) is new to this script: teach docker/run-without-docker.ts what it means outside Docker`);
    }
    log(`run   RUN ${part}`);
    const started = Date.now();
    const result = await run('npm', args, { cwd: inStage(fsys, '.'), env: buildEnv(fsys.env), timeoutMs: INSTALL_TIMEOUT_MS });
    if (result.code !== 0) throw new StepError(`${part} failed (exit ${result.code ?? result.signal})\n${result.output}`);
    log(`      done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** Builds every stage into its own temporary root; returns the last one. */
async function build(stagesOfFile: readonly Stage[], root: string): Promise<StageFs> {
  const ignored = dockerignore(fs.readFileSync(DOCKERIGNORE, 'utf8'));
  const built = new Map<string, StageFs>();
  let current: StageFs | undefined;
  for (const [index, stage] of stagesOfFile.entries()) {
    current = { root: path.join(root, `stage-${index}`), workdir: '/', env: {}, volumes: [] };
    fs.mkdirSync(current.root, { recursive: true });
    log(`stage ${stage.name ?? index} (FROM ${stage.base})`);
    for (const instruction of stage.instructions) {
      switch (instruction.keyword) {
        case 'WORKDIR':
          current.workdir = path.posix.resolve(current.workdir, instruction.args);
          fs.mkdirSync(inStage(current, '.'), { recursive: true });
          break;
        case 'ENV':
          Object.assign(current.env, envOf({ ...stage, instructions: [instruction] }));
          break;
        case 'COPY':
          for (const copy of copiesOf({ ...stage, instructions: [instruction] })) {
            copyStep(current, built, copy, ignored);
            log(`copy  ${copy.from ? `--from=${copy.from} ` : ''}${copy.sources.join(' ')} -> ${copy.dest}`);
          }
          break;
        case 'RUN':
          await runStep(current, splitFlags(instruction.args).rest, String(instruction.line));
          break;
        case 'VOLUME':
          current.volumes.push(...volumesOf({ ...stage, instructions: [instruction] }));
          break;
        case 'USER':
        case 'EXPOSE':
        case 'HEALTHCHECK':
        case 'ENTRYPOINT':
        case 'CMD':
          break; // read from the final stage below
        default:
          throw new StepError(`${instruction.keyword} (Dockerfile line ${instruction.line}) is new to this script: teach docker/run-without-docker.ts about it`);
      }
    }
    if (stage.name) built.set(stage.name, current);
  }
  if (!current) throw new StepError('the Dockerfile has no stage');
  return current;
}

/** The node_modules of the image must hold no package that is only a devDependency. */
function checkNoDevDependencies(appDir: string): void {
  const pkg = JSON.parse(fs.readFileSync(path.join(appDir, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> };
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const present = Object.keys(pkg.devDependencies ?? {}).filter(
    (name) => lock.packages[`node_modules/${name}`]?.dev === true && fs.existsSync(path.join(appDir, 'node_modules', name)),
  );
  if (present.length > 0) throw new StepError(`devDependencies were installed: ${present.join(', ')}`);
}

/** The image runs what the build stage compiled: its CMD names a .js file it holds, and no TypeScript comes along. */
function checkCompiledOnly(appDir: string, cmd: readonly string[]): void {
  const entry = cmd.at(-1) ?? '';
  if (cmd[0] !== 'node' || !entry.endsWith('.js') || !fs.existsSync(path.join(appDir, entry))) {
    throw new StepError(`CMD ${JSON.stringify(cmd)}: expected node and a compiled .js entry that the image holds`);
  }
  const loader = cmd.find((arg) => /^--(import|loader|experimental-loader|require)\b|^-r$/.test(arg));
  if (loader) throw new StepError(`CMD ${JSON.stringify(cmd)} loads ${loader}: the image runs compiled JavaScript with plain node`);
  const sources = (fs.readdirSync(appDir, { recursive: true }) as string[]).filter((file) => !file.split(path.sep).includes('node_modules') && /\.[cm]?ts$/.test(file) && !file.endsWith('.d.ts'));
  if (sources.length > 0) throw new StepError(`the image holds TypeScript source it does not run: ${sources.slice(0, 5).join(', ')}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** `3s`, `500ms`, `1m` (HEALTHCHECK option durations). */
function durationMs(value: string | undefined, fallback: number): number {
  const match = /^(\d+)(ms|s|m)$/.exec(value ?? '');
  if (!match) return fallback;
  return Number(match[1]) * ({ ms: 1, s: 1000, m: 60_000 } as const)[match[2] as 'ms' | 's' | 'm'];
}

async function request(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

/** POST, PATCH, HEAD, GET: the production install can really serve an upload. */
async function tusRoundTrip(baseUrl: string, tusPath: string): Promise<void> {
  const tus = { 'Tus-Resumable': '1.0.0' };
  const body = 'hello world';
  const created = await request(new URL(tusPath, baseUrl).href, { method: 'POST', headers: { ...tus, 'Upload-Length': String(body.length) } });
  const location = created.headers.get('location');
  await created.arrayBuffer();
  if (created.status !== 201 || !location) throw new StepError(`POST ${tusPath}: expected 201 with a Location, got ${created.status}`);
  const uploadUrl = new URL(location, baseUrl).href;
  const patched = await request(uploadUrl, {
    method: 'PATCH',
    headers: { ...tus, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
    body,
  });
  await patched.arrayBuffer();
  if (patched.status !== 204 || patched.headers.get('upload-offset') !== String(body.length)) {
    throw new StepError(`PATCH: expected 204 with Upload-Offset ${body.length}, got ${patched.status} ${patched.headers.get('upload-offset')}`);
  }
  const head = await request(uploadUrl, { method: 'HEAD', headers: tus });
  if (head.status !== 200 || head.headers.get('upload-offset') !== String(body.length)) {
    throw new StepError(`HEAD: expected 200 with Upload-Offset ${body.length}, got ${head.status} ${head.headers.get('upload-offset')}`);
  }
  const download = await request(uploadUrl);
  const text = await download.text();
  if (download.status !== 200 || text !== body) throw new StepError(`GET: expected 200 "${body}", got ${download.status} "${text.slice(0, 80)}"`);
}

/** The browser demo: the page at `/` and the scripts it loads, its tus-js-client bundle included. */
async function demoPage(baseUrl: string): Promise<void> {
  const page = await request(`${baseUrl}/`);
  const html = await page.text();
  if (page.status !== 200 || !page.headers.get('content-type')?.startsWith('text/html')) {
    throw new StepError(`GET /: expected 200 text/html, got ${page.status} ${page.headers.get('content-type')}`);
  }
  const assets = [...html.matchAll(/(?:src|href)="(demo\/[^"]+)"/g)].map((match) => match[1] ?? '');
  if (!assets.includes('demo/tus.min.js') || !assets.includes('demo/app.js')) throw new StepError(`GET /: the page loads ${assets.join(', ') || 'nothing'}, expected demo/tus.min.js and demo/app.js`);
  for (const asset of assets) {
    const response = await request(new URL(asset, `${baseUrl}/`).href);
    await response.arrayBuffer();
    if (response.status !== 200) throw new StepError(`GET /${asset}: expected 200, got ${response.status}`);
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const stages = parseDockerfile(fs.readFileSync(DOCKERFILE, 'utf8'));
  const final = stages.at(-1);
  if (!final) throw new StepError('the Dockerfile has no stage');
  tempRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-docker-steps-'));
  const image = await build(stages, tempRoot);
  const appDir = inStage(image, '.');
  checkNoDevDependencies(appDir);
  log('check node_modules holds no devDependency');

  const cmd = cmdOf(final);
  if (!cmd) throw new StepError('the Dockerfile has no CMD');
  checkCompiledOnly(appDir, cmd);
  log(`check CMD runs compiled JavaScript: ${cmd.at(-1)} is in the image, no .ts file or loader`);
  const entrypoint = entrypointOf(final) ?? [];
  if (entrypoint.length > 0 && !(/(^|\/)tini$/.test(entrypoint[0] ?? '') && entrypoint.slice(1).join(' ') === '--')) {
    throw new StepError(`ENTRYPOINT ${JSON.stringify(entrypoint)} is new to this script: it only knows tini, which forwards signals`);
  }
  const healthcheck = healthcheckOf(final);
  if (!healthcheck) throw new StepError('the Dockerfile has no HEALTHCHECK');

  // The image's ENV, with its volume paths inside the temporary root, and what a host needs.
  const port = await freePort();
  const imageEnv = Object.fromEntries(
    Object.entries(image.env).map(([name, value]) => [name, image.volumes.some((v) => value === v || value.startsWith(`${v}/`)) ? path.join(image.root, value) : value]),
  );
  for (const volume of image.volumes) fs.mkdirSync(path.join(image.root, volume), { recursive: true });
  const home = path.join(image.root, 'home', 'node');
  fs.mkdirSync(home, { recursive: true });
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: process.env.LANG, HOME: home, TMPDIR: os.tmpdir(), ...imageEnv, HOST: '127.0.0.1', PORT: String(port) };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];

  const [program = '', ...args] = cmd;
  log(`start CMD ${JSON.stringify(cmd)} with ENV ${Object.keys(imageEnv).join(', ')} (HOST=127.0.0.1 PORT=${port})`);
  const server = spawn(executable(program), args, { cwd: appDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(server);
  let output = '';
  server.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  server.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => server.once('exit', (code, signal) => resolve({ code, signal })));
  const fail = (message: string) => new StepError(`${message}\n--- server output ---\n${output.slice(-8_000)}`);

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(fail(`no "listening on" line within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    const check = () => {
      const match = /^listening on (http:\/\/\S+)$/m.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    server.stdout.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(fail(`the server exited before listening (${code ?? signal})`));
    });
  });
  log(`ready ${url}`);

  const [healthProgram = '', ...healthArgs] = healthcheck.command;
  const health = await run(executable(healthProgram), healthArgs, { cwd: appDir, env, timeoutMs: durationMs(healthcheck.options.timeout, 30_000) });
  if (health.code !== 0) throw fail(`HEALTHCHECK ${JSON.stringify(healthcheck.command)} exited ${health.code ?? health.signal}\n${health.output}`);
  log('check HEALTHCHECK command passed');

  const ready = await request(`${url}/readyz`);
  await ready.arrayBuffer();
  if (ready.status !== 200) throw fail(`/readyz answered ${ready.status}`);
  await tusRoundTrip(url, env.TUS_PATH ?? '/files/').catch((error: unknown) => {
    throw error instanceof StepError ? fail(error.message) : error;
  });
  log('check tus upload: POST 201, PATCH 204, HEAD 200, GET "hello world"');
  await demoPage(url).catch((error: unknown) => {
    throw error instanceof StepError ? fail(error.message) : error;
  });
  log('check demo page: GET / 200 and the scripts and styles it loads 200');

  if (server.pid === undefined) throw fail('the server has no PID');
  const stopAt = Date.now();
  process.kill(server.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), STOP_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (!stopped) throw fail(`SIGTERM: still running after ${STOP_TIMEOUT_MS} ms`);
  if (stopped.code !== 0) throw fail(`SIGTERM: exited ${stopped.code ?? stopped.signal}, expected 0`);
  log(`check SIGTERM: exit code 0 after ${Date.now() - stopAt} ms`);
  log(`ok    the Dockerfile's install, build and start steps pass outside Docker (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

main()
  .then(() => {
    cleanUp();
    process.exit(0);
  })
  .catch((error: unknown) => {
    cleanUp();
    process.stderr.write(`[docker-steps] FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
