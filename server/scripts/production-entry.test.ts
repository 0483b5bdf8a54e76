import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmdOf, parseDockerfile } from '../../docker/dockerfile.js';
import { parseStartScript, startCommandArgs } from '../../e2e/support/start-command.js';
import { BuildError, buildInputs, checkBuild, ENTRY, ensureBuild, STAMP } from './ensure-build.mjs';

/**
 * The production start: `npm start` runs the compiled server/src/main.ts with plain node, the
 * build that `npm ci` made is there and current, the image's CMD is the same command, and a
 * stale build is rebuilt (or the start fails loudly), never run.
 */

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const repo = (file: string) => path.join(REPO, file);
const pkg = JSON.parse(fs.readFileSync(repo('package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
const GUARD = 'node server/scripts/ensure-build.mjs';
const START_TIMEOUT_MS = 30_000;
/** A compile takes 3-40 s on two cores busy with other tests; the guard's tests below compile up to five times. */
const FIXTURE_TEST_TIMEOUT_MS = 300_000;
const STOP_TIMEOUT_MS = 15_000;

type Run = { code: number | null; stdout: string; stderr: string };

/** Runs a command to its end, bounded; a process still running then is killed by PID. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} took over ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The environment without what npm or vitest put there (npm_config_* would redirect npm). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|VITEST|NODE_OPTIONS$)/i.test(name)));
}

describe('npm start', () => {
  it('runs the compiled entry with plain node: no loader, no TypeScript at start-up', () => {
    const { nodeFlags, entry } = parseStartScript(pkg.scripts.start ?? '');
    expect(entry).toBe(ENTRY);
    expect(nodeFlags.join(' ')).not.toMatch(/tsx|--import|--loader|--require/);
    expect(Object.keys(pkg.dependencies), 'tsx is a development tool only').not.toContain('tsx');
    // What ran before this change compiled TypeScript at every start: it must not pass.
    expect(() => parseStartScript('node --initial-old-space-size=64 --import tsx server/src/main.ts')).toThrow(/plain node/);
    expect(() => parseStartScript('node server/src/main.ts')).toThrow(/compiled entry/);
    expect(() => parseStartScript('node --import tsx server/dist/main.js')).toThrow(/plain node/);
  });

  it('builds at install, and checks the build before it starts and before the tests', () => {
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.scripts.build).toBe(`${GUARD} --build`);
    expect(pkg.scripts.prestart).toBe(GUARD);
    expect(pkg.scripts.pretest).toBe(GUARD);
  });

  it('runs what server/tsconfig.build.json makes of server/src/main.ts, with source maps', () => {
    const file = repo('server/tsconfig.build.json');
    const { config, error } = ts.readConfigFile(file, ts.sys.readFile);
    expect(error).toBeUndefined();
    const parsed = ts.parseJsonConfigFileContent(config, ts.sys, path.dirname(file));
    expect(parsed.errors).toEqual([]);
    expect(parsed.fileNames.map((name) => path.relative(REPO, name))).toEqual(['server/src/main.ts']);
    expect(path.relative(REPO, path.join(parsed.options.outDir ?? '', 'main.js'))).toBe(ENTRY);
    expect(path.relative(REPO, parsed.options.rootDir ?? '')).toBe('server/src');
    expect(parsed.options.noEmit).toBe(false);
    expect(parsed.options.sourceMap).toBe(true);
  });

  it("is the Docker image's CMD, word for word", () => {
    const runtime = parseDockerfile(fs.readFileSync(repo('docker/Dockerfile'), 'utf8')).at(-1);
    expect(runtime && cmdOf(runtime)?.join(' ')).toBe(pkg.scripts.start);
  });

  it('finds the build current with the source (the tests start servers with the same check), and server/dist holds no test code', { timeout: FIXTURE_TEST_TIMEOUT_MS }, () => {
    // startCommandArgs() is what e2e/support/server-process.ts spawns: it rebuilds a stale build first.
    expect(startCommandArgs()).toEqual([...parseStartScript(pkg.scripts.start ?? '').nodeFlags, ENTRY]);
    expect(checkBuild()).toEqual({ fresh: true });
    const built = (fs.readdirSync(repo('server/dist'), { recursive: true }) as string[]).map((file) => file.split(path.sep).join('/'));
    const js = built.filter((file) => file.endsWith('.js'));
    expect(js).toContain('main.js');
    for (const file of js) {
      expect(fs.existsSync(repo(`server/src/${file.replace(/\.js$/, '.ts')}`)), `server/dist/${file} has its source`).toBe(true);
      expect(built, `server/dist/${file} has a source map`).toContain(`${file}.map`);
      expect(file, 'test code in server/dist').not.toMatch(/\.(test|contract)\.js$|^testing\//);
    }
  });

  describe('started by npm itself', () => {
    let storageDir: string | undefined;
    let npmPid: number | undefined;

    afterAll(() => {
      // npm ran detached, in a process group of its own: end that group (npm, sh, node) by its id.
      if (npmPid !== undefined) {
        try {
          process.kill(-npmPid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
    });

    /** The process whose parent chain leads to `ancestor` and that listens: the server. */
    function descendants(ancestor: number): number[] {
      const parents = new Map<number, number>();
      for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
          parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
        } catch {
          // exited meanwhile
        }
      }
      const found: number[] = [];
      for (const pid of parents.keys()) {
        for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) {
          if (p === ancestor) {
            found.push(pid);
            break;
          }
        }
      }
      return found;
    }

    it('serves, and the process serving is `node <flags> server/dist/main.js`', { timeout: FIXTURE_TEST_TIMEOUT_MS }, async () => {
      // Current before npm's prestart looks, so the start timeout below measures the start alone.
      ensureBuild();
      storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-npm-start-'));
      const env = { ...cleanEnv(), HOST: '127.0.0.1', PORT: '0', STORAGE_DIR: storageDir, LOG_LEVEL: 'warn' };
      const npm = spawn('npm', ['start'], { cwd: REPO, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      npmPid = npm.pid;
      let output = '';
      npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      npm.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "listening on" line within ${START_TIMEOUT_MS} ms\n${output}`)), START_TIMEOUT_MS);
        const check = () => {
          const match = /^listening on (http:\/\/\S+)$/m.exec(output);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        };
        npm.stdout.on('data', check);
        void exited.then((code) => reject(new Error(`npm start exited (${code}) before listening\n${output}`)));
      });
      const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(10_000) });
      expect(health.status).toBe(200);

      const commands = descendants(npm.pid!).map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== ''));
      const servers = commands.filter((argv) => argv.includes(ENTRY));
      expect(servers, JSON.stringify(commands)).toHaveLength(1);
      const [executable, ...args] = servers[0]!;
      expect(path.basename(executable ?? '')).toBe('node');
      expect(args).toEqual([...parseStartScript(pkg.scripts.start ?? '').nodeFlags, ENTRY]);
      expect(commands.flat().join(' '), 'nothing compiles TypeScript while it runs').not.toMatch(/\btsx\b|\.ts(\s|$)/);

      process.kill(-npm.pid!, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)))]);
      clearTimeout(timer);
      expect(code, output).not.toBe('timeout');
      npmPid = undefined;
    });
  });
});

/**
 * server/scripts/ensure-build.mjs on projects of their own: the repository's package.json
 * scripts, tsconfig files and guard, around a two-file server/src. Each test takes a copy of
 * an unbuilt or a built template, so none depends on another.
 */
describe('a stale or missing build', { timeout: FIXTURE_TEST_TIMEOUT_MS }, () => {
  const roots: string[] = [];
  let bare: string;
  let built: string;

  const write = (root: string, file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  };
  const message = (root: string, text: string) => write(root, 'server/src/message.ts', `export const message: string = ${text};\n`);
  const runEntry = (root: string) => spawnSync(process.execPath, [path.join(root, ENTRY)], { encoding: 'utf8', timeout: 30_000 }).stdout.trim();
  const build = (root: string, options: { build?: boolean } = {}) => {
    const lines: string[] = [];
    const result = ensureBuild({ root, ...options, log: (line) => lines.push(line) });
    return { ...result, lines };
  };
  const tempRoot = () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tus-ensure-build-'));
    roots.push(root);
    return root;
  };

  /** A copy of a template. A copy of the built one is stamped as its own: the same sources, the same build. */
  function fixture(template: 'bare' | 'built'): string {
    const root = tempRoot();
    fs.cpSync(template === 'bare' ? bare : built, root, { recursive: true, verbatimSymlinks: true });
    if (template === 'built') {
      const stamp = JSON.parse(fs.readFileSync(path.join(root, STAMP), 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(path.join(root, STAMP), JSON.stringify({ ...stamp, inputs: buildInputs(root) }));
      expect(checkBuild(root)).toEqual({ fresh: true });
      expect(runEntry(root)).toBe('v1');
    }
    return root;
  }

  beforeAll(() => {
    bare = tempRoot();
    write(bare, 'package.json', JSON.stringify({ name: 'fixture', private: true, type: 'module', scripts: { prestart: pkg.scripts.prestart, start: 'node server/dist/main.js' } }));
    for (const file of ['tsconfig.json', 'server/tsconfig.build.json', 'server/scripts/ensure-build.mjs']) write(bare, file, fs.readFileSync(repo(file), 'utf8'));
    fs.symlinkSync(repo('node_modules'), path.join(bare, 'node_modules'), 'dir');
    write(bare, 'server/src/main.ts', "import { message } from './message.js';\n\nconsole.log(message);\n");
    write(bare, 'server/src/main.test.ts', 'this is not even TypeScript, and never compiled');
    message(bare, "'v1'");
    built = tempRoot();
    fs.cpSync(bare, built, { recursive: true, verbatimSymlinks: true });
    ensureBuild({ root: built, log: () => {} });
  }, FIXTURE_TEST_TIMEOUT_MS);

  afterAll(() => {
    for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
  });

  it('is built when missing, with source maps and without tests; a fresh one is left alone', () => {
    const root = fixture('bare');
    expect(checkBuild(root)).toEqual({ fresh: false, reason: `${ENTRY} is missing` });
    const first = build(root);
    expect(first.rebuilt).toBe(true);
    expect(first.lines).toEqual([expect.stringContaining(`${ENTRY} is missing`)]);
    expect(runEntry(root)).toBe('v1');
    expect(fs.existsSync(path.join(root, 'server/dist/main.js.map'))).toBe(true);
    expect(fs.existsSync(path.join(root, 'server/dist/main.test.js'))).toBe(false);
    expect(checkBuild(root)).toEqual({ fresh: true });
    expect(build(root)).toEqual({ rebuilt: false, lines: [] });
    // A test file is no input: editing it leaves the build fresh.
    write(root, 'server/src/main.test.ts', 'still not compiled');
    expect(checkBuild(root)).toEqual({ fresh: true });
  });

  it('is rebuilt by npm start after an edit, which says so in one line and then runs the new code', async () => {
    const root = fixture('built');
    message(root, "'v2'");
    expect(checkBuild(root)).toEqual({ fresh: false, reason: 'server/src/message.ts changed since the last build' });
    const started = await run('npm', ['start', '--silent'], root);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout.trim()).toBe('v2');
    expect(started.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^ensure-build: server\/src\/message\.ts changed since the last build: recompiling server\/dist/)]);
    const again = await run('npm', ['start', '--silent'], root);
    expect(again).toEqual({ code: 0, stdout: 'v2\n', stderr: '' });
  });

  it('that does not compile fails the start loudly, and the old build is neither run nor marked fresh', async () => {
    const root = fixture('built');
    message(root, "'v2' +");
    let error: unknown;
    try {
      build(root);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(BuildError);
    expect(String(error)).toMatch(/tsc -p server\/tsconfig.build.json failed[\s\S]*server\/src\/message\.ts/);
    const started = await run('npm', ['start', '--silent'], root);
    expect(started.code).not.toBe(0);
    expect(started.stdout).not.toContain('v1');
    expect(started.stderr).toMatch(/ensure-build: tsc .* failed/);
    expect(runEntry(root), 'server/dist is left as it was').toBe('v1');
    expect(checkBuild(root).fresh).toBe(false);
  });

  it('is rebuilt without the type check (as tsx ran it), while npm run build refuses type errors', () => {
    const root = fixture('built');
    write(root, 'server/src/message.ts', "export const message: number = 'v4';\n");
    expect(() => build(root, { build: true })).toThrow(/error TS2322/);
    expect(runEntry(root), 'a refused build leaves server/dist as it was').toBe('v1');
    expect(build(root).rebuilt).toBe(true);
    expect(runEntry(root)).toBe('v4');
    expect(checkBuild(root)).toEqual({ fresh: true });
    const stamp = JSON.parse(fs.readFileSync(path.join(root, STAMP), 'utf8')) as { typeChecked: boolean };
    expect(stamp.typeChecked).toBe(false);
  });

  it('counts a new or removed source file, a backdated mtime and a changed build config as stale', () => {
    const added = fixture('built');
    write(added, 'server/src/extra.ts', 'export {};\n');
    expect(checkBuild(added)).toEqual({ fresh: false, reason: 'server/src/extra.ts is new since the last build' });
    const removed = fixture('built');
    fs.rmSync(path.join(removed, 'server/src/message.ts'));
    expect(checkBuild(removed)).toEqual({ fresh: false, reason: 'server/src/message.ts was removed since the last build' });
    const backdated = fixture('built');
    const old = new Date('2020-01-01T00:00:00Z');
    fs.utimesSync(path.join(backdated, 'server/src/message.ts'), old, old);
    expect(checkBuild(backdated)).toEqual({ fresh: false, reason: 'server/src/message.ts changed since the last build' });
    const config = fixture('built');
    write(config, 'server/tsconfig.build.json', `${fs.readFileSync(path.join(config, 'server/tsconfig.build.json'), 'utf8')}\n`);
    expect(checkBuild(config)).toEqual({ fresh: false, reason: 'server/tsconfig.build.json changed since the last build' });
    const unstamped = fixture('built');
    fs.rmSync(path.join(unstamped, STAMP));
    expect(checkBuild(unstamped)).toEqual({ fresh: false, reason: `${STAMP} is missing (server/dist was not built by this script)` });
  });

  it('is rebuilt once when several processes start at the same time, and leaves no lock or temporary folder', async () => {
    const root = fixture('built');
    message(root, "'v5'");
    // What a build killed half-way leaves behind; the next build clears it.
    for (const leftover of ['server/.dist-tmp-4000001', 'server/.dist-old-4000001']) write(root, `${leftover}/main.js`, '');
    const runs = await Promise.all([1, 2, 3].map(() => run(process.execPath, ['server/scripts/ensure-build.mjs'], root)));
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
    expect(runs.flatMap((r) => r.stderr.split('\n').filter((line) => line.startsWith('ensure-build:')))).toHaveLength(1);
    expect(runEntry(root)).toBe('v5');
    expect(fs.readdirSync(path.join(root, 'server')).sort()).toEqual(['dist', 'scripts', 'src', 'tsconfig.build.json']);
  });
});
