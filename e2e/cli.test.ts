import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFile, MiB, sha256, type TestFile } from './support/files.js';
import { bytesReceived, pollUntil, REPO_ROOT, Scope, withTimeout, type ExitInfo, type ServerProcess } from './support/server-process.js';
import { uploadIdOf } from './support/status.js';
import { download, fetchWithin, head, RateLimit, TUS } from './support/tus.js';

/**
 * The command-line uploader (client-demo/cli) as users run it: a child process of its own
 * against the real server, killed, interrupted and cut off from the network mid-upload.
 */

const CLI = ['--import', 'tsx', 'client-demo/cli/main.ts'];
const CLI_TIMEOUT_MS = 60_000;

type CliRun = Readonly<{
  pid: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<ExitInfo>;
  kill(signal: NodeJS.Signals): void;
}>;

type CliResult = Readonly<ExitInfo & { stdout: string; stderr: string }>;

/** Spawns the CLI (node itself, so the PID is the CLI's) with a clean environment; SIGKILLed after `timeoutMs`. */
function startCli(scope: Scope, args: readonly string[], env: Readonly<Record<string, string>>, timeoutMs = CLI_TIMEOUT_MS): CliRun {
  const base: Record<string, string> = {};
  for (const key of ['PATH', 'TMPDIR', 'LANG']) {
    const value = process.env[key];
    if (value !== undefined) base[key] = value;
  }
  const child: ChildProcess = spawn(process.execPath, [...CLI, ...args], { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('the CLI could not be spawned');
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (out += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (err += text));
  const exited = new Promise<ExitInfo>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const kill = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, signal);
  };
  const timer = setTimeout(() => kill('SIGKILL'), timeoutMs);
  void exited.then(() => clearTimeout(timer));
  scope.defer(async () => {
    kill('SIGKILL');
    await withTimeout(exited, 5_000, `CLI ${pid} to exit`);
  });
  return { pid, stdout: () => out, stderr: () => err, exited, kill };
}

async function runCli(scope: Scope, args: readonly string[], env: Readonly<Record<string, string>>): Promise<CliResult> {
  const run = startCli(scope, args, env);
  const info = await withTimeout(run.exited, CLI_TIMEOUT_MS + 5_000, 'the CLI to exit');
  return { ...info, stdout: run.stdout(), stderr: run.stderr() };
}

/** The highest percent the CLI's progress lines show so far. */
function percentShown(stdout: string): number {
  return Math.max(-1, ...[...stdout.matchAll(/\]\s+(\d+)%/g)].map((m) => Number(m[1])));
}

async function waitForPercent(run: CliRun, percent: number): Promise<number> {
  return pollUntil(
    () => {
      if (run.stdout().includes('uploaded ')) throw new Error(`the upload finished before ${percent}%:\n${run.stdout()}`);
      const shown = percentShown(run.stdout());
      return shown >= percent ? shown : undefined;
    },
    `the CLI to show ${percent}%`,
    30_000,
    10,
  );
}

/** The upload URL at the end of the CLI's `uploaded <name> (...): <url>` line. */
function uploadedUrl(stdout: string, name: string): string {
  const match = new RegExp(`^uploaded ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(.*\\): (http\\S+)$`, 'm').exec(stdout);
  if (!match?.[1]) throw new Error(`no "uploaded ${name}" line in:\n${stdout}`);
  return match[1];
}

type StateDocument = { version: 1; uploads: Record<string, { path: string; uploadUrl: string | null; parallelUploadUrls: string[] | null }> };

async function readState(file: string): Promise<StateDocument> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as StateDocument;
}



type Link = Readonly<{
  /** `http://127.0.0.1:PORT/files/`: the endpoint to give the CLI. */
  endpoint: string;
  /** The network drops: every connection is cut and new ones are closed at once. */
  down(): void;
  up(): void;
  close(): Promise<void>;
}>;

/**
 * The network between the CLI and a server: request bodies slowed to `bytesPerSecond` (so a
 * kill lands mid-upload) and a switch that drops the link. The Host header is passed on, so
 * upload URLs point back at the link.
 */
async function startLink(scope: Scope, target: string, bytesPerSecond: number): Promise<Link> {
  const sockets = new Set<Socket>();
  let isDown = false;
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const upstream = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    // The client went away (killed, or the link dropped): so does the request to the server.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(new RateLimit(bytesPerSecond)).pipe(upstream);
  });
  server.on('connection', (socket) => {
    if (isDown) return socket.destroy();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const link: Link = {
    endpoint: `http://127.0.0.1:${port}/files/`,
    down() {
      isDown = true;
      for (const socket of sockets) socket.destroy();
    },
    up() {
      isDown = false;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
  scope.defer(() => link.close());
  return link;
}

describe('the command-line uploader', () => {
  const scope = new Scope();
  let server: ServerProcess;
  let dir: string;
  /** HOME for the CLI: nothing of the developer's is read or written. */
  let home: string;

  beforeAll(async () => {
    server = await scope.server();
    dir = await scope.tempDir('tus-e2e-cli-');
    home = path.join(dir, 'home');
    await fs.mkdir(home);
  });
  afterAll(() => scope.dispose());

  /** A fresh state file per test, so no test sees another's uploads. */
  const stateFile = (name: string) => path.join(dir, `${name}.state.json`);
  const env = () => ({ HOME: home });

  it('uploads a 48 MiB file: exit 0, the server has the same bytes, the state entry is gone', async () => {
    const file = await makeFile(dir, 'whole-48.bin', 48 * MiB);
    const state = stateFile('whole');
    const result = await runCli(scope, [file.path, '--endpoint', server.endpoint, '--state-file', state], env());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/whole-48\.bin {2}\[#{20}\]\s+100% {2}48\.0 MiB \/ 48\.0 MiB/);
    const url = uploadedUrl(result.stdout, 'whole-48.bin');
    expect(url.startsWith(server.endpoint)).toBe(true);
    const got = await download(url);
    expect(got.sha256).toBe(file.sha256);
    expect((await readState(state)).uploads).toEqual({});
    // Default chunk size 8 MiB: six PATCHes.
    expect(server.logs().filter((line) => line.method === 'PATCH' && line.uploadId === uploadIdOf(url))).toHaveLength(6);
  });

  it('killed with SIGKILL at 30%, a second run resumes from the server offset and the result is byte-identical', async () => {
    const file = await makeFile(dir, 'killed-48.bin', 48 * MiB);
    const state = stateFile('killed');
    // 24 MiB/s: the whole file takes about 2 s, so the kill lands inside a PATCH.
    const link = await startLink(scope, server.url, 24 * MiB);
    const args = [file.path, '--endpoint', link.endpoint, '--state-file', state];

    const first = startCli(scope, args, env());
    const shown = await waitForPercent(first, 30);
    first.kill('SIGKILL');
    expect((await withTimeout(first.exited, 5_000, 'the killed CLI')).signal).toBe('SIGKILL');
    expect(shown).toBeLessThan(100);

    // The upload URL was saved as soon as the server created it.
    const entries = Object.values((await readState(state)).uploads);
    expect(entries).toHaveLength(1);
    const savedUrl = entries[0]?.uploadUrl ?? '';
    expect(entries[0]?.path).toBe(file.path);
    const id = uploadIdOf(savedUrl);

    const second = await runCli(scope, args, env());
    expect(second.code, second.stderr).toBe(0);
    const resumed = /^resuming killed-48\.bin from byte (\d+) \(.*, (\d+)%\)$/m.exec(second.stdout);
    expect(resumed, second.stdout).not.toBeNull();
    const offset = Number(resumed?.[1]);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThan(file.size);
    // The resume line comes before any progress of the second run, which starts at that offset.
    expect(second.stdout.indexOf('resuming')).toBeLessThan(second.stdout.indexOf('%'));
    expect(uploadedUrl(second.stdout, 'killed-48.bin')).toBe(savedUrl);

    const got = await download(server.endpoint + id);
    expect(got.sha256).toBe(file.sha256);
    const received = bytesReceived(server, id);
    expect(received).toBeGreaterThanOrEqual(file.size);
    expect(received).toBeLessThan(1.2 * file.size);
    // One upload, created once.
    expect(server.logs().filter((line) => line.method === 'POST' && line.uploadId === id)).toHaveLength(1);
    expect((await readState(state)).uploads).toEqual({});
    console.log(`[cli] SIGKILL at ${shown}%, resumed from byte ${offset}; server received ${received} bytes for ${file.size} (${(received / file.size).toFixed(3)}x)`);
  });

  it('Ctrl-C (SIGINT) stops with exit code 130 and keeps the state; a second run finishes', async () => {
    const file = await makeFile(dir, 'interrupted-32.bin', 32 * MiB);
    const state = stateFile('interrupted');
    const link = await startLink(scope, server.url, 16 * MiB);
    const args = [file.path, '--endpoint', link.endpoint, '--state-file', state];

    const first = startCli(scope, args, env());
    await waitForPercent(first, 30);
    first.kill('SIGINT');
    const exit = await withTimeout(first.exited, 10_000, 'the interrupted CLI to exit');
    expect(exit.code, first.stderr()).toBe(130);
    expect(first.stderr()).toMatch(/^tus-upload: stopped by Ctrl-C: interrupted-32\.bin at .* of 32\.0 MiB; run the same command again to resume$/m);
    const [entry] = Object.values((await readState(state)).uploads);
    expect(entry?.uploadUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/files\/[0-9a-f]+$/);

    const second = await runCli(scope, args, env());
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^resuming interrupted-32\.bin from byte \d+/m);
    const url = uploadedUrl(second.stdout, 'interrupted-32.bin');
    expect(url).toBe(entry?.uploadUrl);
    expect((await download(server.endpoint + uploadIdOf(url))).sha256).toBe(file.sha256);
  });

  it('rides out a network drop: retries with backoff, says so, and finishes', async () => {
    const file = await makeFile(dir, 'dropped-32.bin', 32 * MiB);
    const link = await startLink(scope, server.url, 16 * MiB);
    const run = startCli(scope, [file.path, '--endpoint', link.endpoint, '--state-file', stateFile('dropped')], env());
    await waitForPercent(run, 30);
    link.down();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    link.up();
    const exit = await withTimeout(run.exited, CLI_TIMEOUT_MS, 'the CLI to finish after the drop');
    expect(exit.code, run.stderr()).toBe(0);
    expect(run.stdout()).toMatch(/^dropped-32\.bin: .*; retry 1 of 10 in 500 ms$/m);
    expect(run.stdout()).toMatch(/^dropped-32\.bin: the server answers again$/m);
    const url = uploadedUrl(run.stdout(), 'dropped-32.bin');
    expect((await download(server.endpoint + uploadIdOf(url))).sha256).toBe(file.sha256);
  });

  it('when retries run out: exit 1, a message that says to run it again, and that run resumes', async () => {
    const file = await makeFile(dir, 'offline-32.bin', 32 * MiB);
    const state = stateFile('offline');
    const link = await startLink(scope, server.url, 16 * MiB);
    const args = [file.path, '--endpoint', link.endpoint, '--state-file', state, '--retries', '2'];
    const first = startCli(scope, args, env());
    await waitForPercent(first, 30);
    link.down();
    const exit = await withTimeout(first.exited, 20_000, 'the CLI to give up');
    expect(exit.code).toBe(1);
    expect(first.stderr()).toMatch(
      new RegExp(`^tus-upload: upload of offline-32\\.bin failed: .+; its upload URL is kept in ${state.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: run the same command again to resume$`, 'm'),
    );
    expect(first.stdout()).toMatch(/retry 2 of 2/);

    link.up();
    const second = await runCli(scope, args, env());
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^resuming offline-32\.bin from byte [1-9]\d*/m);
    const url = uploadedUrl(second.stdout, 'offline-32.bin');
    expect((await download(server.endpoint + uploadIdOf(url))).sha256).toBe(file.sha256);
  });

  it('starts over, and says so, when the saved upload is gone from the server', async () => {
    const file = await makeFile(dir, 'gone-32.bin', 32 * MiB);
    const state = stateFile('gone');
    const link = await startLink(scope, server.url, 16 * MiB);
    const args = [file.path, '--endpoint', link.endpoint, '--state-file', state];
    const first = startCli(scope, args, env());
    await waitForPercent(first, 20);
    first.kill('SIGINT');
    expect((await withTimeout(first.exited, 10_000, 'the interrupted CLI')).code).toBe(130);
    const [entry] = Object.values((await readState(state)).uploads);
    const oldId = uploadIdOf(entry?.uploadUrl ?? '');
    // Terminated on the server meanwhile (as an expiry would).
    const deleted = await pollUntil(async () => {
      const response = await fetchWithin(server.endpoint + oldId, { method: 'DELETE', headers: TUS });
      return response.status === 423 ? undefined : response.status;
    }, 'the DELETE to get the lock');
    expect(deleted).toBe(204);

    const second = await runCli(scope, args, env());
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^the server no longer has the earlier upload of gone-32\.bin \((404 Not Found|410 Gone)\); starting over$/m);
    const url = uploadedUrl(second.stdout, 'gone-32.bin');
    expect(uploadIdOf(url)).not.toBe(oldId);
    expect((await download(server.endpoint + uploadIdOf(url))).sha256).toBe(file.sha256);
    expect((await readState(state)).uploads).toEqual({});
  });

  it('uploads a folder: every regular file, one after another, with a summary; hidden files and links skipped', async () => {
    const folder = path.join(dir, 'album');
    await fs.mkdir(path.join(folder, 'day-2'), { recursive: true });
    const files: TestFile[] = [await makeFile(folder, 'a.mp4', 3 * MiB), await makeFile(folder, 'b.jpg', 1 * MiB + 7), await makeFile(path.join(folder, 'day-2'), 'c.mov', 2 * MiB)];
    await fs.writeFile(path.join(folder, '.DS_Store'), 'hidden');
    await fs.symlink(files[0]?.path ?? '', path.join(folder, 'link.mp4'));

    const result = await runCli(scope, [folder, '--endpoint', server.endpoint, '--state-file', stateFile('album'), '--chunk-size', '1MiB'], env());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^skipped 1 hidden \(--include-hidden\), 1 symbolic link \(--follow-symlinks\)$/m);
    expect(result.stdout).toMatch(/^\[1\/3\] album\/a\.mp4$/m);
    expect(result.stdout).toMatch(/^3 of 3 files uploaded$/m);
    for (const [name, file] of [
      ['album/a.mp4', files[0]],
      ['album/b.jpg', files[1]],
      ['album/day-2/c.mov', files[2]],
    ] as const) {
      const url = uploadedUrl(result.stdout, name);
      expect((await download(url)).sha256, name).toBe(file?.sha256);
      const status = (await (await fetchWithin(`${server.url}/uploads/${uploadIdOf(url)}`)).json()) as { metadata: Record<string, string> };
      expect(status.metadata).toMatchObject({ filename: path.basename(name), relativePath: name });
    }
  });

  it('--parallel 4 against a server without concatenation: says so and uploads over one connection', async () => {
    const plain = await startMinimalTusServer(scope, 'creation');
    const file = await makeFile(dir, 'parallel-8.bin', 8 * MiB);
    const result = await runCli(scope, [file.path, '--endpoint', `${plain.url}/files/`, '--state-file', stateFile('parallel'), '--parallel', '4'], env());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^--parallel 4: the server does not support concatenation \(Tus-Extension: creation\); uploading over one connection$/m);
    const url = uploadedUrl(result.stdout, 'parallel-8.bin');
    expect(sha256(new Uint8Array(await (await fetchWithin(url)).arrayBuffer()))).toBe(file.sha256);
    expect(plain.uploads()).toBe(1);
  });

  it('--parallel 4 against this server: four partial uploads and one final upload, byte-identical', async () => {
    const file = await makeFile(dir, 'parallel-16.bin', 16 * MiB);
    const result = await runCli(scope, [file.path, '--endpoint', server.endpoint, '--state-file', stateFile('parallel-4'), '--parallel', '4'], env());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain('does not support concatenation');
    const url = uploadedUrl(result.stdout, 'parallel-16.bin');
    expect((await download(url)).sha256).toBe(file.sha256);
    expect((await head(url)).headers.get('upload-concat')).toMatch(/^final;(\/files\/\S+ ?){4}$/);
  });

  it('exits 2 with a usage hint for a missing file or a bad option, uploading nothing', async () => {
    const missing = await runCli(scope, [path.join(dir, 'nope.mp4'), '--endpoint', server.endpoint, '--state-file', stateFile('usage')], env());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`tus-upload: ${path.join(dir, 'nope.mp4')}: no such file or directory\nNothing was uploaded. Run with --help for usage.\n`);
    const bad = await runCli(scope, ['x', '--endpoint', server.endpoint, '--chunk-size', 'huge'], env());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('tus-upload: --chunk-size "huge" is not a size (8MiB, 512KiB, 10MB or bytes)\nRun with --help for usage.\n');
    const noEndpoint = await runCli(scope, ['x'], env());
    expect(noEndpoint.code).toBe(2);
    expect(noEndpoint.stderr).toContain('--endpoint <url> (or set TUS_ENDPOINT)');
  });

  it('starts from the npm script (paths relative to where it was typed) and from npx (package.json "bin")', async () => {
    const file = await makeFile(dir, 'from-npm.bin', 1 * MiB);
    const commands = [
      { argv: ['npm', '--prefix', REPO_ROOT, 'run', '--silent', 'upload', '--', 'from-npm.bin', '--endpoint', server.endpoint, '--state-file', stateFile('npm')], cwd: dir },
      { argv: ['npx', '--offline', 'tus-upload', '--help'], cwd: REPO_ROOT },
    ];
    const outputs: string[] = [];
    for (const { argv, cwd } of commands) {
      const [bin = '', ...rest] = argv;
      const child = spawn(bin, rest, { cwd, env: { PATH: process.env.PATH ?? '', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout?.setEncoding('utf8').on('data', (text: string) => (out += text));
      child.stderr?.setEncoding('utf8').on('data', (text: string) => (err += text));
      scope.defer(() => child.exitCode === null && child.signalCode === null && child.pid !== undefined && process.kill(child.pid, 'SIGKILL'));
      const code = await withTimeout(new Promise<number | null>((resolve) => child.once('exit', resolve)), 60_000, argv.join(' '));
      expect(code, `${argv.join(' ')}\n${out}\n${err}`).toBe(0);
      outputs.push(out);
    }
    expect((await download(uploadedUrl(outputs[0] ?? '', 'from-npm.bin'))).sha256).toBe(file.sha256);
    expect(outputs[1]).toMatch(/^Usage: tus-upload <file\|folder>\.\.\. --endpoint <url> \[options\]/m);
  });
});

describe('the command-line uploader against a server with rules', () => {
  const scope = new Scope();
  let dir: string;
  afterAll(() => scope.dispose());
  beforeAll(async () => {
    dir = await scope.tempDir('tus-e2e-cli-rules-');
  });

  it('reports a refusal in words, exit 1: a type that is not allowed, a file over the limit', async () => {
    const server = await scope.server({ env: { ALLOWED_TYPES: 'video/*', MAX_UPLOAD_SIZE: String(1 * MiB) } });
    const text = path.join(dir, 'notes.txt');
    await fs.writeFile(text, 'hello');
    const refused = await runCli(scope, [text, '--endpoint', server.endpoint, '--state-file', path.join(dir, 'state.json')], { HOME: dir });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('tus-upload: upload of notes.txt refused by the server: filetype text/plain is not allowed; allowed: video/* (415)\n');

    const big = await makeFile(dir, 'big.mp4', 2 * MiB);
    const tooBig = await runCli(scope, [big.path, '--endpoint', server.endpoint, '--state-file', path.join(dir, 'state.json')], { HOME: dir });
    expect(tooBig.code).toBe(1);
    expect(tooBig.stderr).toBe('tus-upload: upload of big.mp4 refused by the server: the upload is 2 MiB (2097152 bytes); the maximum upload size is 1 MiB (1048576 bytes) (413)\n');
    // Nothing half-done to resume.
    expect(JSON.parse(await fs.readFile(path.join(dir, 'state.json'), 'utf8'))).toEqual({ version: 1, uploads: {} });
  });

  it('sends --header "Authorization: Bearer <jwt>"; without it, exit 1 with the 401 in words', async () => {
    const secret = randomBytes(32).toString('hex');
    const server = await scope.server({ env: { AUTH_JWT_SECRET: secret } });
    const file = await makeFile(dir, 'private.mp4', 3 * MiB);
    const state = path.join(dir, 'auth-state.json');

    const without = await runCli(scope, [file.path, '--endpoint', server.endpoint, '--state-file', state], { HOME: dir });
    expect(without.code).toBe(1);
    expect(without.stderr).toBe('tus-upload: upload of private.mp4 refused by the server: this server needs a token: send Authorization: Bearer <token> (401)\n');

    const token = await new SignJWT({ sub: 'cli-test' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    const withToken = await runCli(scope, [file.path, '--endpoint', server.endpoint, '--state-file', state, '--header', `Authorization: Bearer ${token}`], { HOME: dir });
    expect(withToken.code, withToken.stderr).toBe(0);
    const url = uploadedUrl(withToken.stdout, 'private.mp4');
    expect((await download(url, { Authorization: `Bearer ${token}` })).sha256).toBe(file.sha256);
  });
});

/**
 * The smallest tus server, in memory, advertising the extensions it is given: creation,
 * HEAD, PATCH, `Upload-Concat: partial` and `final;<urls>`, and GET. Stands for a server
 * without concatenation (as plain @tus/server).
 */
async function startMinimalTusServer(scope: Scope, extensions: string): Promise<{ url: string; received(): number; uploads(): number }> {
  type Stored = { length: number; chunks: Buffer[]; offset: number; partial: boolean };
  const uploads = new Map<string, Stored>();
  let received = 0;
  let next = 0;
  const server = http.createServer((req, res) => {
    const answer = (status: number, headers: Record<string, string | number> = {}) => res.writeHead(status, { 'Tus-Resumable': '1.0.0', ...headers }).end();
    const id = (req.url ?? '').split('/').pop() ?? '';
    const upload = uploads.get(id);
    if (req.method === 'OPTIONS') return answer(204, { 'Tus-Version': '1.0.0', 'Tus-Extension': extensions });
    if (req.method === 'POST') {
      const concat = String(req.headers['upload-concat'] ?? '');
      const newId = String((next += 1));
      if (concat.startsWith('final;')) {
        const parts = concat.slice('final;'.length).trim().split(/\s+/).map((u) => uploads.get(u.split('/').pop() ?? ''));
        if (parts.some((p) => !p || p.offset !== p.length)) return answer(400);
        const data = Buffer.concat(parts.flatMap((p) => p?.chunks ?? []));
        uploads.set(newId, { length: data.length, chunks: [data], offset: data.length, partial: false });
      } else {
        uploads.set(newId, { length: Number(req.headers['upload-length']), chunks: [], offset: 0, partial: concat === 'partial' });
      }
      return answer(201, { Location: `/files/${newId}` });
    }
    if (!upload) return answer(404);
    if (req.method === 'HEAD') return answer(200, { 'Upload-Offset': upload.offset, 'Upload-Length': upload.length, 'Cache-Control': 'no-store' });
    if (req.method === 'GET') return res.writeHead(200, { 'Content-Length': upload.offset }).end(Buffer.concat(upload.chunks));
    if (req.method === 'PATCH') {
      if (Number(req.headers['upload-offset']) !== upload.offset) return answer(409);
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        upload.chunks.push(chunk);
        upload.offset += chunk.length;
      });
      req.on('end', () => answer(204, { 'Upload-Offset': upload.offset }));
      return;
    }
    answer(405);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received: () => received, uploads: () => uploads.size };
}

describe('the command-line uploader with --parallel, against a server with concatenation', () => {
  const scope = new Scope();
  let dir: string;
  afterAll(() => scope.dispose());
  beforeAll(async () => {
    dir = await scope.tempDir('tus-e2e-cli-parallel-');
  });

  it('uploads in 4 partial uploads, survives a SIGKILL, resumes all 4 and concatenates them', async () => {
    const target = await scope.server();
    const link = await startLink(scope, target.url, 4 * MiB);
    const file = await makeFile(dir, 'parts-16.bin', 16 * MiB);
    const state = path.join(dir, 'state.json');
    const args = [file.path, '--endpoint', link.endpoint, '--state-file', state, '--parallel', '4', '--chunk-size', '1MiB'];

    const first = startCli(scope, args, { HOME: dir });
    await waitForPercent(first, 30);
    first.kill('SIGKILL');
    await withTimeout(first.exited, 5_000, 'the killed CLI');
    const [entry] = Object.values((await readState(state)).uploads);
    expect(entry?.parallelUploadUrls).toHaveLength(4);
    expect(entry?.uploadUrl).toBeNull();

    const second = await runCli(scope, args, { HOME: dir });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).not.toContain('does not support concatenation');
    expect(second.stdout).toMatch(/^resuming parts-16\.bin from byte [1-9]\d* /m);
    const url = uploadedUrl(second.stdout, 'parts-16.bin');
    const got = await fetchWithin(url.replace(link.endpoint, `${target.url}/files/`));
    expect(sha256(new Uint8Array(await got.arrayBuffer()))).toBe(file.sha256);
    // 4 partial uploads and the final one, none created twice; nothing sent twice beyond a chunk per part.
    const requests = target.logs().filter((line) => line.msg === 'request');
    expect(requests.filter((line) => line.method === 'POST' && line.status === 201)).toHaveLength(5);
    const received = requests.reduce((sum, line) => sum + (typeof line.bytesIn === 'number' ? line.bytesIn : 0), 0);
    expect(received).toBeLessThan(1.2 * file.size);
  });
});
