/** Types for ensure-build.mjs, so TypeScript callers (e2e/support/start-command.ts, tests) can import it. */

export declare const REPO_ROOT: string;
/** `server/dist/main.js`, relative to the repository root. */
export declare const ENTRY: string;
/** `server/dist/.build-stamp.json`, relative to the repository root. */
export declare const STAMP: string;

export declare class BuildError extends Error {}

/** Size and mtime (ms) of every build input, keyed by path relative to the root. */
export type BuildInputs = Record<string, [size: number, mtimeMs: number]>;

export declare function buildInputs(root?: string): BuildInputs;

export declare function checkBuild(root?: string): { fresh: true } | { fresh: false; reason: string };

export declare function ensureBuild(options?: {
  root?: string;
  /** Always build, with the type check (npm run build). */
  build?: boolean;
  log?: (line: string) => void;
}): { rebuilt: false } | { rebuilt: true; reason: string | undefined; ms: number };
