import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
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
