/**
 * Just enough of a Dockerfile and .dockerignore reader for docker/run-without-docker.ts and
 * server/src/docker-files.test.ts: both must see the same instructions Docker would, so the
 * steps run outside Docker and the checks of the image cannot drift from the file itself.
 * It understands the forms our Dockerfile uses; anything else fails loudly rather than guess.
 */

export type Instruction = Readonly<{ keyword: string; args: string; line: number }>;

export type Stage = Readonly<{ name: string | undefined; base: string; instructions: readonly Instruction[] }>;

/** `COPY [--from=stage] <sources...> <dest>` */
export type Copy = Readonly<{ from: string | undefined; sources: readonly string[]; dest: string; line: number }>;

export type Healthcheck = Readonly<{ options: Readonly<Record<string, string>>; command: readonly string[] }>;

/** Splits a Dockerfile into stages of instructions: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, index) => {
    const trimmed = raw.trim();
    // Comment lines end nothing, even inside a continuation (as in Docker).
    if (trimmed.startsWith('#') || (trimmed === '' && pending === undefined)) return;
    const continued = trimmed.endsWith('\\');
    const part = continued ? trimmed.slice(0, -1).trim() : trimmed;
    pending = pending ? { text: `${pending.text} ${part}`, line: pending.line } : { text: part, line: index + 1 };
    if (continued) return;
    const match = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(pending.text);
    if (!match) throw new Error(`Dockerfile line ${pending.line}: cannot read "${pending.text}"`);
    instructions.push({ keyword: (match[1] ?? '').toUpperCase(), args: (match[2] ?? '').trim(), line: pending.line });
    pending = undefined;
  });
  const stages: { name: string | undefined; base: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [base = '', as, name] = instruction.args.split(/\s+/);
      stages.push({ base, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile line ${instruction.line}: ${instruction.keyword} before FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

export const instructionsOf = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

/** The exec (JSON array) form, the only one that lets signals reach the process. */
export function execForm(args: string, what: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new Error(`${what}: expected the exec form ["executable", "arg", ...], got ${args}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === 'string')) {
    throw new Error(`${what}: expected a non-empty JSON array of strings, got ${args}`);
  }
  return parsed as string[];
}

/** The last instruction of a kind decides (CMD, ENTRYPOINT, HEALTHCHECK, USER). */
function last(stage: Stage, keyword: string): Instruction | undefined {
  return instructionsOf(stage, keyword).at(-1);
}

export function cmdOf(stage: Stage): string[] | undefined {
  const cmd = last(stage, 'CMD');
  return cmd && execForm(cmd.args, 'CMD');
}

export function entrypointOf(stage: Stage): string[] | undefined {
  const entrypoint = last(stage, 'ENTRYPOINT');
  return entrypoint && execForm(entrypoint.args, 'ENTRYPOINT');
}

export function userOf(stage: Stage): string | undefined {
  return last(stage, 'USER')?.args;
}

/** Every `ENV` of a stage, in order (`K=V K2="V 2"` or the legacy `K V`). */
export function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args, line } of instructionsOf(stage, 'ENV')) {
    if (!args.includes('=')) {
      const [name = '', ...rest] = args.split(/\s+/);
      env[name] = rest.join(' ');
      continue;
    }
    const pairs = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
    const consumed = args.replace(pairs, '').trim();
    if (consumed !== '') throw new Error(`Dockerfile line ${line}: cannot read ENV ${args}`);
    for (const [, name = '', value = ''] of args.matchAll(pairs)) {
      env[name] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
    }
  }
  return env;
}

/** Flags (`--from=x`, `--mount=...`) in front of an instruction's arguments, and the rest. */
export function splitFlags(args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest)) {
    flags[m[1] ?? ''] = m[2] ?? '';
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

export function copiesOf(stage: Stage): Copy[] {
  return instructionsOf(stage, 'COPY').map(({ args, line }) => {
    const { flags, rest } = splitFlags(args);
    const parts = rest.startsWith('[') ? execForm(rest, 'COPY') : rest.split(/\s+/);
    if (parts.length < 2) throw new Error(`Dockerfile line ${line}: COPY needs a source and a destination`);
    return { from: flags.from, sources: parts.slice(0, -1), dest: parts.at(-1) ?? '', line };
  });
}

/** `RUN` commands without their flags (`--mount=type=cache,...` only speeds builds up). */
export function runsOf(stage: Stage): string[] {
  return instructionsOf(stage, 'RUN').map(({ args }) => splitFlags(args).rest);
}

export function healthcheckOf(stage: Stage): Healthcheck | undefined {
  const instruction = last(stage, 'HEALTHCHECK');
  if (!instruction) return undefined;
  const { flags, rest } = splitFlags(instruction.args);
  const match = /^CMD\s+([\s\S]*)$/.exec(rest);
  if (!match) throw new Error(`Dockerfile line ${instruction.line}: expected HEALTHCHECK [options] CMD [...]`);
  return { options: flags, command: execForm(match[1] ?? '', 'HEALTHCHECK CMD') };
}

export function volumesOf(stage: Stage): string[] {
  return instructionsOf(stage, 'VOLUME').flatMap(({ args }) => (args.startsWith('[') ? execForm(args, 'VOLUME') : args.split(/\s+/)));
}

export function exposedPortsOf(stage: Stage): number[] {
  return instructionsOf(stage, 'EXPOSE').flatMap(({ args }) => args.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ''))));
}

/** A `.dockerignore` glob as a RegExp over slash-separated paths relative to the context. */
function globToRegExp(glob: string): RegExp {
  let source = '';
  const parts = glob.split('/');
  parts.forEach((part, index) => {
    const isLast = index === parts.length - 1;
    if (part === '**') {
      source += isLast ? '.*' : '(?:[^/]+/)*';
      return;
    }
    source += part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
    if (!isLast) source += '/';
  });
  return new RegExp(`^${source}$`);
}

/**
 * Whether the build context leaves a file out, as Docker decides it: the last matching
 * pattern wins, `!` re-includes, and a pattern that matches a parent directory matches
 * everything below it.
 */
export function dockerignore(text: string): (relativePath: string) => boolean {
  const patterns = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const glob = (negated ? line.slice(1) : line).trim().replace(/^\/+|\/+$/g, '');
      return { negated, regexp: globToRegExp(glob) };
    });
  return (relativePath) => {
    const segments = relativePath.split('/');
    const candidates = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const { negated, regexp } of patterns) {
      if (candidates.some((candidate) => regexp.test(candidate))) excluded = !negated;
    }
    return excluded;
  };
}
