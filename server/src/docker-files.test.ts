import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  cmdOf,
  copiesOf,
  dockerignore,
  entrypointOf,
  envOf,
  exposedPortsOf,
  healthcheckOf,
  parseDockerfile,
  runsOf,
  userOf,
  volumesOf,
} from '../../docker/dockerfile.js';
import { ENTRY } from '../scripts/ensure-build.mjs';
import { CONFIG_VARIABLES, parseConfig, type Config, type Env } from './config.js';
import { DEMO_FILES, DEMO_PACKAGES } from './routes/demo-page.js';
import { parseDuration } from './units/duration.js';

/**
 * No Docker engine runs these files in CI, so they are checked against the code instead:
 * every variable against the config schema, every port and health check against the port the
 * server listens on, every secret, volume, bucket and upstream against what uses it.
 * docker/run-without-docker.ts (e2e/docker-steps.test.ts) runs the Dockerfile's steps for real.
 */

const repo = (file: string) => fileURLToPath(new URL(`../../${file}`, import.meta.url));
const read = (file: string) => fs.readFileSync(repo(file), 'utf8');

const pkg = JSON.parse(read('package.json')) as { scripts: { start: string; build?: string }; dependencies: Record<string, string> };
const DIST_DIR = path.posix.dirname(ENTRY);
const readme = read('README.md');

const stages = parseDockerfile(read('docker/Dockerfile'));
const runtime = stages.at(-1)!;
const imageEnv = envOf(runtime);
/** What the image's ENV hands the server (NODE_ENV is Node's, not ours). */
const imageConfigEnv: Env = Object.fromEntries(Object.entries(imageEnv).filter(([name]) => name !== 'NODE_ENV'));
const ignored = dockerignore(read('docker/Dockerfile.dockerignore'));

type Service = {
  build?: { context?: string; dockerfile?: string };
  image?: string;
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  secrets?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
  restart?: string;
};
type ComposeFile = { services: Record<string, Service>; secrets?: Record<string, { file: string }>; volumes?: Record<string, unknown> };

const COMPOSE_FILES = ['docker/compose.yaml', 'docker/compose.s3.yaml'] as const;
// Compose resolves `<<` merge keys (YAML 1.1); the x-upload-server template relies on them.
const loadCompose = (file: string) => parse(read(file), { merge: true }) as ComposeFile;

/** Services that run this repository's image. */
const uploadServers = (compose: ComposeFile) =>
  Object.entries(compose.services).filter(([, service]) => service.build?.dockerfile === 'docker/Dockerfile');

/** The environment the server sees in a service: the image's ENV, then the service's. */
const serverEnv = (service: Service): Env => ({ ...imageConfigEnv, ...service.environment });

/** parseConfig as the container runs it, `/run/secrets/<name>` read from the compose file's secret files. */
function parseServiceConfig(file: string, compose: ComposeFile, service: Service): Config {
  return parseConfig(serverEnv(service), '/app', (secretPath) => {
    const name = /^\/run\/secrets\/([\w.-]+)$/.exec(secretPath)?.[1];
    if (!name) throw new Error(`${secretPath} is not a Docker secret path (/run/secrets/<name>)`);
    const secret = compose.secrets?.[name];
    if (!secret || !service.secrets?.includes(name)) throw new Error(`secret ${name} is not given to this service`);
    return fs.readFileSync(path.resolve(path.dirname(repo(file)), secret.file), 'utf8');
  });
}

const listenPort = (service: Service) => Number(serverEnv(service).PORT);
/** The container side of `host:container` (or a bare container port). */
const containerPort = (mapping: string) => Number(mapping.split(':').at(-1)?.replace(/\/tcp$/, ''));
const durationOf = (value: string | undefined) => (value === undefined ? undefined : parseDuration(value));

/** nginx statements as [name, args], comments dropped (block headers such as `location /` included). */
function nginxDirectives(conf: string): [string, string][] {
  return conf
    .replace(/#[^\n]*/g, '')
    .split(/[;{}]/)
    .map((statement) => statement.trim().replace(/\s+/g, ' '))
    .filter((statement) => statement !== '')
    .map((statement) => {
      const [name = '', ...args] = statement.split(' ');
      return [name, args.join(' ')];
    });
}

/** What tus needs from nginx: unlimited, unbuffered, long-lived streams and the forwarded host. */
function expectTusProxySettings(conf: string, where: string): void {
  const directives = nginxDirectives(conf);
  const value = (name: string) => directives.filter(([n]) => n === name).map(([, args]) => args);
  expect(value('client_max_body_size'), `${where}: client_max_body_size`).toEqual(['0']);
  expect(value('proxy_request_buffering'), `${where}: proxy_request_buffering`).toEqual(['off']);
  expect(value('proxy_buffering'), `${where}: proxy_buffering`).toEqual(['off']);
  expect(value('proxy_http_version'), `${where}: proxy_http_version`).toEqual(['1.1']);
  const idleTimeoutMs = parseConfig({}).server.idleTimeoutMs;
  for (const name of ['proxy_read_timeout', 'proxy_send_timeout']) {
    const [timeout] = value(name);
    expect(timeout, `${where}: ${name}`).toBeDefined();
    expect(durationOf(timeout), `${where}: ${name} at least IDLE_TIMEOUT, so the server decides about stalled clients`).toBeGreaterThanOrEqual(idleTimeoutMs);
  }
  const headers = value('proxy_set_header').map((args) => args.split(' ')[0]?.toLowerCase());
  expect(headers, `${where}: forwarded headers for TRUST_PROXY`).toEqual(expect.arrayContaining(['x-forwarded-host', 'x-forwarded-proto']));
}

/**
 * The files loaded when main.ts runs (relative imports, followed) and the packages they load;
 * `import type` is erased, so it counts for neither.
 */
function runtimeModules(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"\n]+)['"]|\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g;
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    for (const [, typeOnly, staticSpec, dynamicSpec] of read(file).matchAll(IMPORT)) {
      const spec = staticSpec ?? dynamicSpec ?? '';
      if (typeOnly || spec.startsWith('node:')) continue;
      if (spec.startsWith('.')) pending.push(path.posix.join(path.posix.dirname(file), spec).replace(/\.js$/, '.ts'));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec));
    }
  }
  return { files, packages };
}

describe('docker/Dockerfile', () => {
  it('installs production dependencies only, in a stage of its own, from the lockfile', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const modules = copiesOf(runtime).find((copy) => copy.from !== undefined && copy.dest.replace(/\/$/, '').endsWith('node_modules'));
    const deps = stages.find((stage) => stage.name === modules?.from);
    expect(deps, 'the runtime stage copies node_modules from an install stage').toBeDefined();
    expect(copiesOf(deps!).flatMap((copy) => copy.sources).sort()).toEqual(['package-lock.json', 'package.json']);
    expect(runsOf(deps!)).toEqual([expect.stringMatching(/^npm ci --omit=dev(\s|$)/)]);
    expect(runsOf(runtime).join('\n'), 'nothing is installed in the runtime stage').not.toMatch(/\bnpm (ci|install|i)\b/);
  });

  it('compiles server/src in a build stage of its own (every dependency, from the lockfile), and the image takes only its output', () => {
    const output = copiesOf(runtime).find((copy) => copy.from !== undefined && copy.sources.some((source) => source.replace(/\/$/, '') === `/app/${DIST_DIR}`));
    const build = stages.find((stage) => stage.name === output?.from);
    expect(build, `the runtime stage copies ${DIST_DIR} from a build stage`).toBeDefined();
    expect(output?.dest.replace(/^\.\/|\/$/g, ''), 'the same layout: server/dist beside node_modules and package.json').toBe(DIST_DIR);
    const runs = runsOf(build!);
    expect(runs[0], 'TypeScript is a devDependency: the build stage installs them all').toMatch(/^npm ci(\s|$)/);
    expect(runs[0]).not.toMatch(/--omit=dev|--production/);
    expect(runs.at(-1)).toBe('npm run build');
    expect(pkg.scripts.build).toBe('node server/scripts/ensure-build.mjs --build');
    const buildSources = copiesOf(build!).flatMap((copy) => copy.sources.map((s) => s.replace(/^\.\/|\/$/g, '')));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'server/tsconfig.build.json', 'server/scripts', 'server/src']) {
      expect(buildSources, `the build stage copies ${needed}`).toContain(needed);
    }
    // package.json makes node load server/dist's .js files as ES modules.
    expect(copiesOf(runtime).filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources)).toContain('package.json');
  });

  it('copies what main.ts loads into the build stage, and the build context holds it; every package it loads is a dependency', () => {
    const build = stages.find((stage) => runsOf(stage).includes('npm run build'))!;
    const contextCopies = copiesOf(build).filter((copy) => copy.from === undefined);
    const sources = contextCopies.flatMap((copy) => copy.sources.map((s) => s.replace(/^\.\/|\/$/g, '')));
    for (const source of sources) {
      expect(fs.existsSync(repo(source)), `COPY ${source}`).toBe(true);
      if (fs.statSync(repo(source)).isFile()) expect(ignored(source), `COPY ${source}: Dockerfile.dockerignore leaves it out`).toBe(false);
    }
    const { files, packages } = runtimeModules('server/src/main.ts');
    expect(files.size).toBeGreaterThan(10);
    for (const file of files) {
      expect(fs.existsSync(repo(file)), `${file} (imported at runtime)`).toBe(true);
      expect(sources.some((source) => file === source || file.startsWith(`${source}/`)), `${file} is copied into the build stage`).toBe(true);
      expect(ignored(file), `${file} is imported at runtime but Dockerfile.dockerignore leaves it out`).toBe(false);
    }
    for (const file of ['tsconfig.json', 'server/tsconfig.build.json', 'server/scripts/ensure-build.mjs']) expect(ignored(file), `${file} is needed to build`).toBe(false);
    for (const name of packages) {
      expect(Object.keys(pkg.dependencies), `${name} is needed at runtime: list it under dependencies`).toContain(name);
    }
  });

  it('runs the compiled entry with plain node: no TypeScript source, loader or tsx in the image', () => {
    const cmd = cmdOf(runtime) ?? [];
    expect(cmd[0]).toBe('node');
    expect(cmd.at(-1)).toBe(ENTRY);
    expect(cmd.filter((arg) => /^--(import|loader|experimental-loader|require)\b|^-r$/.test(arg)), 'a loader in CMD').toEqual([]);
    const runtimeSources = copiesOf(runtime).flatMap((copy) => copy.sources.map((s) => s.replace(/^\.\/|\/$/g, '')));
    expect(runtimeSources.filter((source) => source === 'server/src' || source.startsWith('server/src/') || source.endsWith('.ts'))).toEqual([]);
    expect(Object.keys(pkg.dependencies), 'tsx compiles at start-up: a devDependency only').not.toContain('tsx');
  });

  it('copies the browser demo to where the server reads it, and the packages it serves are dependencies', () => {
    // demo-page.ts finds the page relative to itself: the image keeps the repository's layout.
    const sameLayout = copiesOf(runtime)
      .filter((copy) => copy.from === undefined)
      .flatMap((copy) => copy.sources.map((source) => [source.replace(/^\.\/|\/$/g, ''), copy.dest.replace(/^\.\/|\/$/g, '')] as const))
      .filter(([source, dest]) => source === dest)
      .map(([source]) => source);
    expect(DEMO_FILES.length).toBeGreaterThan(0);
    for (const file of DEMO_FILES) {
      expect(fs.existsSync(repo(file)), file).toBe(true);
      expect(sameLayout.some((source) => file === source || file.startsWith(`${source}/`)), `${file} is copied into the image at the same path`).toBe(true);
      expect(ignored(file), `${file} is served by the demo but Dockerfile.dockerignore leaves it out`).toBe(false);
    }
    expect(DEMO_PACKAGES).toEqual(['tus-js-client']);
    for (const name of DEMO_PACKAGES) expect(Object.keys(pkg.dependencies), `${name} is served to browsers: list it under dependencies`).toContain(name);
  });

  it('runs as the non-root node user, with uploads in the /data volume', () => {
    expect(userOf(runtime)).toBe('node');
    expect(volumesOf(runtime)).toEqual(['/data']);
    expect(imageEnv.STORAGE_DIR).toMatch(/^\/data\//);
    expect(runsOf(runtime)).toContainEqual(expect.stringMatching(/chown -R node:node \/data$/));
  });

  it('sets only variables the config schema knows, with valid values', () => {
    for (const name of Object.keys(imageConfigEnv)) expect(CONFIG_VARIABLES, `ENV ${name}`).toContain(name);
    expect(() => parseConfig(imageConfigEnv, '/app')).not.toThrow();
  });

  it('exposes the port it listens on and health-checks /healthz there', () => {
    const port = parseConfig(imageConfigEnv, '/app').server.port;
    expect(exposedPortsOf(runtime)).toEqual([port]);
    const healthcheck = healthcheckOf(runtime);
    expect(healthcheck?.command[0]).toBe('node');
    const script = healthcheck?.command.join(' ') ?? '';
    // It follows a PORT given at `docker run -e PORT=...`, and defaults to the image's.
    expect(script).toContain("fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz')");
    expect(port).toBe(8080);
  });

  it('starts the server as npm start and the README do, under tini so SIGTERM reaches node', () => {
    const cmd = (cmdOf(runtime) ?? []).join(' ');
    expect(cmd).toBe(pkg.scripts.start);
    expect(readme).toContain(`\`npm start\` runs \`${cmd}\``);
    expect(entrypointOf(runtime)).toEqual(['/usr/bin/tini', '--']);
    expect(runsOf(runtime)).toContainEqual(expect.stringMatching(/apt-get install [^&]*\btini\b/));
  });
});

describe.each(COMPOSE_FILES)('%s', (file) => {
  const text = read(file);
  const compose = loadCompose(file);
  const servers = uploadServers(compose);

  it('runs the upload server image', () => {
    expect(servers.length).toBeGreaterThan(0);
    for (const [, service] of servers) expect(path.resolve(path.dirname(repo(file)), service.build?.context ?? '')).toBe(repo('.').replace(/\/$/, ''));
  });

  it('has no lone $ (compose would interpolate it; a literal one is $$)', () => {
    expect(text.replace(/\$\$/g, '')).not.toMatch(/\$(?!\{)/);
  });

  it('declares every secret and volume its services use, and the files behind them exist', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const secret of service.secrets ?? []) expect(Object.keys(compose.secrets ?? {}), `${name}: secret ${secret}`).toContain(secret);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] ?? '';
        if (source.startsWith('.') || source.startsWith('/')) expect(fs.existsSync(path.resolve(path.dirname(repo(file)), source)), `${name}: ${source}`).toBe(true);
        else expect(Object.keys(compose.volumes ?? {}), `${name}: volume ${source}`).toContain(source);
      }
    }
    for (const [name, secret] of Object.entries(compose.secrets ?? {})) {
      expect(fs.existsSync(path.resolve(path.dirname(repo(file)), secret.file)), `secret ${name}: ${secret.file}`).toBe(true);
    }
  });

  it('waits only on health checks that exist and jobs that end', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [target, { condition }] of Object.entries(service.depends_on ?? {})) {
        const dependency = compose.services[target];
        expect(dependency, `${name} depends on ${target}`).toBeDefined();
        if (condition === 'service_healthy') expect(dependency?.healthcheck, `${target} needs a healthcheck for ${name}`).toBeDefined();
        else expect(condition, `${name} → ${target}`).toBe('service_completed_successfully');
        if (condition === 'service_completed_successfully') expect(dependency?.restart ?? 'no', `${target} must end`).toBe('no');
      }
    }
  });

  describe.each(servers.map(([name, service]) => ({ name, service })))('$name', ({ service }) => {
    it('sets only config variables, and the configuration (secrets included) parses', () => {
      expect(service.environment).toBeTypeOf('object');
      for (const name of Object.keys(service.environment ?? {})) expect(CONFIG_VARIABLES, name).toContain(name);
      expect(() => parseServiceConfig(file, compose, service)).not.toThrow();
      for (const [name, value] of Object.entries(service.environment ?? {}).filter(([n]) => n.endsWith('_FILE'))) {
        const secret = /^\/run\/secrets\/([\w.-]+)$/.exec(value)?.[1];
        expect(secret, `${name} reads a Docker secret`).toBeDefined();
        expect(service.secrets, `${name}: the service is given secret ${secret}`).toContain(secret);
      }
    });

    it('health-checks /healthz on the port the server listens on, and exposes that port', () => {
      const port = listenPort(service);
      expect(port).toBe(parseServiceConfig(file, compose, service).server.port);
      expect(service.healthcheck?.test.join(' ')).toContain(`'http://127.0.0.1:${port}/healthz'`);
      const ports = [...(service.ports ?? []), ...(service.expose ?? [])];
      expect(ports.length).toBeGreaterThan(0);
      for (const mapping of ports) expect(containerPort(mapping), mapping).toBe(port);
    });

    it("keeps the image's command and tini entrypoint", () => {
      if (service.command !== undefined) expect([service.command].flat().join(' ')).toBe(pkg.scripts.start);
      expect(service.entrypoint).toBeUndefined();
    });

    it('lets a stop drain: stop_grace_period beyond SHUTDOWN_TIMEOUT and the 5 s margin of main.ts', () => {
      const config = parseServiceConfig(file, compose, service);
      expect(durationOf(service.stop_grace_period)).toBeGreaterThan(config.server.shutdownTimeoutMs + 5_000);
    });

    it('keeps STORAGE_DIR in a named volume of its own', () => {
      const storageDir = serverEnv(service).STORAGE_DIR ?? '';
      const mounts = (service.volumes ?? []).map((v) => v.split(':')).filter(([, target]) => target && (storageDir === target || storageDir.startsWith(`${target}/`)));
      expect(mounts, `a volume holds ${storageDir}`).toHaveLength(1);
      const source = mounts[0]?.[0] ?? '';
      expect(Object.keys(compose.volumes ?? {})).toContain(source);
      const others = servers.filter(([, s]) => s !== service).flatMap(([, s]) => (s.volumes ?? []).map((v) => v.split(':')[0]));
      expect(others, `${source} is shared with another instance`).not.toContain(source);
    });
  });
});

describe('docker/compose.s3.yaml: several instances on S3 (MinIO) and Redis, behind nginx', () => {
  const file = 'docker/compose.s3.yaml';
  const compose = loadCompose(file);
  const servers = uploadServers(compose);
  // Parsed inside each test, so a broken file fails tests (with the reason), not the collection.
  const configs = () => servers.map(([, service]) => parseServiceConfig(file, compose, service));
  const s3Of = (config: Config | undefined) => (config?.storage.kind === 's3' ? config.storage : undefined);
  const byImage = (prefix: string) => Object.entries(compose.services).filter(([, s]) => s.image?.split(':')[0] === prefix);
  const [minioName, minio] = byImage('minio/minio')[0] ?? [];
  const [jobName, job] = byImage('minio/mc')[0] ?? [];
  const [redisName, redis] = byImage('redis')[0] ?? [];
  const [proxyName, proxy] = byImage('nginx')[0] ?? [];

  it('runs two instances on the same bucket, prefix, Redis and Redis prefix, trusting the proxy', () => {
    expect(servers).toHaveLength(2);
    for (const config of configs()) {
      expect(config.storage.kind).toBe('s3');
      expect(config.redis, 'REDIS_URL: several instances share locks, queue and status').toBeDefined();
      expect(config.server.trustProxy).toBe(true);
    }
    const shared = (config: Config) => {
      if (config.storage.kind !== 's3') throw new Error('expected S3 storage');
      const { bucket, prefix, endpoint, forcePathStyle, credentials } = config.storage;
      return { bucket, prefix, endpoint, forcePathStyle, credentials, redis: config.redis };
    };
    expect(shared(configs()[1]!)).toEqual(shared(configs()[0]!));
  });

  it('points S3_ENDPOINT at MinIO and REDIS_URL at Redis, and waits for both and for the bucket', () => {
    expect(minio && job && redis).toBeTruthy();
    const [first] = configs();
    const s3 = s3Of(first);
    const endpoint = new URL(s3?.endpoint ?? '');
    expect(endpoint.hostname).toBe(minioName);
    expect(endpoint.port).toBe('9000'); // MinIO's default address; the command sets no other
    expect([minio?.command].flat().join(' ')).not.toContain('--address');
    expect(s3?.forcePathStyle).toBe(true);
    const redisUrl = new URL(first?.redis?.url ?? '');
    expect(redisUrl.hostname).toBe(redisName);
    expect(redisUrl.port).toBe('6379');
    for (const [name, service] of servers) {
      expect(service.depends_on, name).toEqual({
        [minioName!]: { condition: 'service_healthy' },
        [redisName!]: { condition: 'service_healthy' },
        [jobName!]: { condition: 'service_completed_successfully' },
      });
    }
  });

  it('creates the bucket the servers use, idempotently, with the credentials they use', () => {
    const script = [job?.entrypoint, job?.command].flat().join('\n');
    const s3 = s3Of(configs()[0]);
    const alias = /mc alias set (\S+) (\S+) /.exec(script);
    expect(alias?.[2]).toBe(s3?.endpoint);
    expect(script).toContain(`mc mb --ignore-existing ${alias?.[1]}/${s3?.bucket}`);
    const env = servers[0]?.[1].environment ?? {};
    for (const secretFile of [env.S3_ACCESS_KEY_ID_FILE, env.S3_SECRET_ACCESS_KEY_FILE]) {
      expect(script).toContain(`cat ${secretFile}`);
      expect(job?.secrets).toContain(secretFile?.split('/').at(-1));
    }
  });

  it('gives MinIO the access key and secret the servers use', () => {
    const env = servers[0]?.[1].environment ?? {};
    expect(minio?.environment?.MINIO_ROOT_USER_FILE).toBe(env.S3_ACCESS_KEY_ID_FILE);
    expect(minio?.environment?.MINIO_ROOT_PASSWORD_FILE).toBe(env.S3_SECRET_ACCESS_KEY_FILE);
    for (const secretFile of [env.S3_ACCESS_KEY_ID_FILE, env.S3_SECRET_ACCESS_KEY_FILE]) expect(minio?.secrets).toContain(secretFile?.split('/').at(-1));
    // MinIO refuses a root user under 3 and a password under 8 characters.
    const credentials = s3Of(configs()[0])?.credentials;
    expect(credentials?.accessKeyId.length).toBeGreaterThanOrEqual(3);
    expect(credentials?.secretAccessKey.length).toBeGreaterThanOrEqual(8);
  });

  it('publishes only the proxy, which balances over every instance with the settings tus needs', () => {
    expect(proxy, 'an nginx service').toBeDefined();
    const mount = (proxy?.volumes ?? []).find((v) => v.startsWith('./nginx.conf:'));
    expect(mount?.split(':')[1]).toBe('/etc/nginx/conf.d/default.conf');
    const conf = read('docker/nginx.conf');
    const upstream = /upstream\s+(\S+)\s*\{([^}]*)\}/.exec(conf.replace(/#[^\n]*/g, ''));
    const members = nginxDirectives(`{${upstream?.[2] ?? ''}`).filter(([name]) => name === 'server').map(([, args]) => args.split(' ')[0]);
    expect(members.sort()).toEqual(servers.map(([name, service]) => `${name}:${listenPort(service)}`).sort());
    expect(nginxDirectives(conf)).toContainEqual(['proxy_pass', `http://${upstream?.[1]}`]);
    expectTusProxySettings(conf, 'docker/nginx.conf');
    const listen = nginxDirectives(conf).find(([name]) => name === 'listen')?.[1];
    expect((proxy?.ports ?? []).map(containerPort)).toEqual([Number(listen)]);
    for (const [name, service] of servers) {
      expect(service.ports, `${name} is reached through ${proxyName} only`).toBeUndefined();
      expect(proxy?.depends_on?.[name]).toEqual({ condition: 'service_healthy' });
    }
  });
});

describe('README deployment section', () => {
  const section = readme.split('\n## Deployment')[1]?.split('\n## ')[0] ?? '';

  it('exists, and its commands name files that exist', () => {
    expect(section).not.toBe('');
    const composeFiles = [...section.matchAll(/docker compose -f (\S+)/g)].map((m) => m[1] ?? '');
    expect(new Set(composeFiles)).toEqual(new Set(COMPOSE_FILES));
    expect(section).toContain('docker build -f docker/Dockerfile -t tus-upload-server .');
    expect(read('docker/Dockerfile')).toContain('docker build -f docker/Dockerfile -t tus-upload-server .');
  });

  it('shows nginx with every setting tus needs', () => {
    const blocks = [...section.matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    expect(blocks.length).toBeGreaterThan(0);
    blocks.forEach((block, i) => expectTusProxySettings(block, `README nginx example ${i + 1}`));
  });
});
