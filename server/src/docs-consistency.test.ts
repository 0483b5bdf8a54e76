import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, parseConfig } from './config.js';

const repo = (file: string) => fileURLToPath(new URL(`../../${file}`, import.meta.url));
const readme = fs.readFileSync(repo('README.md'), 'utf8');

/** The rows of the README's configuration table: [variable, default or undefined for "none"]. */
function readmeConfigRows(): [string, string | undefined][] {
  const section = readme.split('## Configuration')[1]?.split('\n## ')[0] ?? '';
  return [...section.matchAll(/^\| `([A-Z0-9_]+)` \| (?:`([^`]*)`|none) \|/gm)].map((m) => [m[1] ?? '', m[2]]);
}

describe('README configuration table', () => {
  it('lists exactly the variables the schema reads', () => {
    expect(readmeConfigRows().map(([name]) => name).sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it('states defaults that parse to the schema defaults', () => {
    const defaults = parseConfig({});
    for (const [name, value] of readmeConfigRows()) {
      if (value !== undefined) expect(parseConfig({ [name]: value }), `${name}=${value}`).toEqual(defaults);
    }
  });
});

describe('README quick start and CI', () => {
  const commands = [...readme.matchAll(/^(npm ci && npm (?:start|test))/gm)].map((m) => m[1]);

  it('has the two quick-start commands', () => {
    expect(commands).toEqual(['npm ci && npm start', 'npm ci && npm test']);
  });

  it('.ci/run calls exactly the README test command', () => {
    const run = fs.readFileSync(repo('.ci/run'), 'utf8');
    expect(run.split('\n').filter((line) => line.startsWith('npm '))).toEqual(['npm ci && npm test']);
  });
});

describe('docker files', () => {
  const dockerfile = fs.readFileSync(repo('docker/Dockerfile'), 'utf8');
  const compose = parse(fs.readFileSync(repo('docker/compose.yaml'), 'utf8')) as {
    services: Record<string, { environment?: Record<string, string>; ports?: string[]; healthcheck?: { test: string[] } }>;
  };

  it('sets only environment variables the config schema knows, with valid values', () => {
    const dockerEnv = Object.fromEntries([...dockerfile.matchAll(/^\s+([A-Z_]+)=(\S+?)\s*\\?$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
    delete dockerEnv.NODE_ENV;
    for (const service of Object.values(compose.services)) {
      const env = service.environment ?? {};
      for (const name of Object.keys(env)) expect(CONFIG_VARIABLES).toContain(name);
      expect(() => parseConfig(env)).not.toThrow();
    }
    for (const name of Object.keys(dockerEnv)) expect(CONFIG_VARIABLES).toContain(name);
    expect(() => parseConfig(dockerEnv)).not.toThrow();
  });

  it('health checks /healthz on the port the server listens on', () => {
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/healthz/);
    expect(dockerfile).toMatch(/EXPOSE 8080/);
    const service = compose.services['upload-server'];
    expect(service?.ports).toContain('8080:8080');
    expect(service?.environment?.PORT).toBe('8080');
    expect(service?.healthcheck?.test.join(' ')).toContain('127.0.0.1:8080/healthz');
  });

  it('starts the server as npm start does, with signals reaching node', () => {
    const pkg = JSON.parse(fs.readFileSync(repo('package.json'), 'utf8')) as { scripts: Record<string, string> };
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(cmd && (JSON.parse(cmd) as string[]).join(' ')).toBe(pkg.scripts.start);
    expect(dockerfile).toMatch(/ENTRYPOINT \["\/usr\/bin\/tini", "--"\]/);
    expect(dockerfile).toMatch(/^USER node$/m);
  });
});
