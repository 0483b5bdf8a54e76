import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatBytes, parseByteSize } from './units.js';

/** What one run of the uploader was asked to do. */
export type CliOptions = Readonly<{
  /** Files and folders to upload, as given. */
  paths: readonly string[];
  /** The tus creation URL (`--endpoint`, else `TUS_ENDPOINT`). */
  endpoint: string;
  /** Bytes per PATCH request. @default 8 MiB */
  chunkSize: number;
  /** Connections per file, used only when the server advertises `concatenation`. @default 1 */
  parallel: number;
  /** Extra request headers (`--header "Name: value"`), e.g. Authorization. */
  headers: Readonly<Record<string, string>>;
  /** Extra upload metadata (`--metadata key=value`); wins over filename and filetype. */
  metadata: Readonly<Record<string, string>>;
  /** Where upload URLs are kept between runs. @default $XDG_STATE_HOME/tus-upload/state.json or ~/.tus-upload-state.json */
  stateFile: string;
  /** Retries after a failed request before giving up. @default 10 */
  retries: number;
  /** No progress, no notices: errors and the upload URLs only. @default false */
  quiet: boolean;
  /** Upload files and folders whose name starts with a dot. @default false */
  includeHidden: boolean;
  /** Follow symbolic links inside folders. @default false */
  followSymlinks: boolean;
}>;

export type ParsedArgs = { kind: 'run'; options: CliOptions } | { kind: 'help' } | { kind: 'error'; message: string };

/** What the defaults depend on, passed in so parsing stays pure. */
export type ArgsContext = Readonly<{
  env: Readonly<Record<string, string | undefined>>;
  homeDir: string;
  cwd: string;
}>;

export const DEFAULT_CHUNK_SIZE = 8 * 1024 ** 2;
export const DEFAULT_RETRIES = 10;
export const MIN_CHUNK_SIZE = 1024;
export const MAX_PARALLEL = 16;
export const MAX_RETRIES = 100;

export const USAGE = `Usage: tus-upload <file|folder>... --endpoint <url> [options]

Uploads files to a tus server and resumes where they stopped when run again.

Options:
  -e, --endpoint <url>      the server's tus endpoint, e.g. http://localhost:8080/files/
                            (default: $TUS_ENDPOINT)
  -c, --chunk-size <size>   bytes per request: 8MiB, 512KiB, 10MB, 1048576 (default: 8MiB)
  -p, --parallel <n>        connections per file, 1-${MAX_PARALLEL}, when the server supports
                            concatenation (default: 1)
  -H, --header <h>          extra request header "Name: value" (repeatable), e.g.
                            --header "Authorization: Bearer <token>"
  -m, --metadata <k=v>      extra upload metadata (repeatable); filename and filetype are
                            set from the file unless given here
      --state-file <path>   where upload URLs are kept for resuming
                            (default: $XDG_STATE_HOME/tus-upload/state.json, else
                            ~/.tus-upload-state.json)
      --retries <n>         retries of a failed request, with backoff up to 30 s (default: ${DEFAULT_RETRIES})
      --include-hidden      also upload files and folders whose name starts with "."
      --follow-symlinks     follow symbolic links inside folders
  -q, --quiet               print only errors and the upload URLs
  -h, --help                show this help

Exit status: 0 all uploaded, 1 an upload failed, 2 bad arguments or missing files,
130 interrupted by Ctrl-C, 143 by SIGTERM (run the same command again to resume).`;

export const USAGE_HINT = 'Run with --help for usage.';

/** Headers the uploader sets itself: a user value would break the protocol. */
const RESERVED_HEADERS = new Set(['tus-resumable', 'upload-offset', 'upload-length', 'upload-metadata', 'upload-concat', 'upload-defer-length', 'content-type', 'content-length', 'host', 'transfer-encoding']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `Name: value` into a header, or why not. */
export function parseHeader(input: string): { name: string; value: string } | string {
  const colon = input.indexOf(':');
  if (colon <= 0) return `--header "${input}" is not "Name: value"`;
  const name = input.slice(0, colon).trim();
  const value = input.slice(colon + 1).trim();
  if (!TOKEN.test(name)) return `--header: "${name}" is not a valid header name`;
  if (/[\r\n\0]/.test(value)) return `--header ${name}: the value may not contain line breaks`;
  if (RESERVED_HEADERS.has(name.toLowerCase())) return `--header ${name}: this header is set by the uploader`;
  return { name, value };
}

/** `key=value` into metadata, or why not (tus: keys are non-empty, without spaces or commas). */
export function parseMetadata(input: string): { key: string; value: string } | string {
  const equals = input.indexOf('=');
  if (equals <= 0) return `--metadata "${input}" is not "key=value"`;
  const key = input.slice(0, equals);
  if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(key)) return `--metadata: the key "${key}" may only hold printable ASCII without spaces or commas`;
  return { key, value: input.slice(equals + 1) };
}

function parseInteger(name: string, input: string, min: number, max: number): number | string {
  if (!/^\d+$/.test(input.trim())) return `--${name} must be a whole number from ${min} to ${max}, got "${input}"`;
  const value = Number(input);
  if (value < min || value > max) return `--${name} must be from ${min} to ${max}, got ${value}`;
  return value;
}

/** `$XDG_STATE_HOME/tus-upload/state.json` when that is set, else `~/.tus-upload-state.json`. */
export function defaultStateFile(context: ArgsContext): string {
  const xdg = context.env.XDG_STATE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'tus-upload', 'state.json');
  return path.join(context.homeDir, '.tus-upload-state.json');
}

/** The command line (without node and the script) into options; never throws. */
export function parseCliArgs(argv: readonly string[], context: ArgsContext): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        endpoint: { type: 'string', short: 'e' },
        'chunk-size': { type: 'string', short: 'c' },
        parallel: { type: 'string', short: 'p' },
        header: { type: 'string', short: 'H', multiple: true },
        metadata: { type: 'string', short: 'm', multiple: true },
        'state-file': { type: 'string' },
        retries: { type: 'string' },
        'include-hidden': { type: 'boolean' },
        'follow-symlinks': { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // parseArgs explains itself ("Unknown option '--foo'"); keep its first sentence.
    return { kind: 'error', message: (error as Error).message.split(/\.\s/)[0] ?? 'bad arguments' };
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: 'help' };
  if (positionals.length === 0) return { kind: 'error', message: 'name at least one file or folder to upload' };

  const endpointText = values.endpoint ?? context.env.TUS_ENDPOINT;
  if (!endpointText) return { kind: 'error', message: 'say where to upload: --endpoint <url> (or set TUS_ENDPOINT)' };
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    return { kind: 'error', message: `--endpoint "${endpointText}" is not a URL` };
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') return { kind: 'error', message: `--endpoint must be an http:// or https:// URL, got "${endpointText}"` };

  let chunkSize = DEFAULT_CHUNK_SIZE;
  if (values['chunk-size'] !== undefined) {
    const bytes = parseByteSize(values['chunk-size']);
    if (bytes === undefined) return { kind: 'error', message: `--chunk-size "${values['chunk-size']}" is not a size (8MiB, 512KiB, 10MB or bytes)` };
    if (bytes < MIN_CHUNK_SIZE) return { kind: 'error', message: `--chunk-size must be at least ${formatBytes(MIN_CHUNK_SIZE)}` };
    chunkSize = bytes;
  }

  const parallel = values.parallel === undefined ? 1 : parseInteger('parallel', values.parallel, 1, MAX_PARALLEL);
  if (typeof parallel === 'string') return { kind: 'error', message: parallel };
  const retries = values.retries === undefined ? DEFAULT_RETRIES : parseInteger('retries', values.retries, 0, MAX_RETRIES);
  if (typeof retries === 'string') return { kind: 'error', message: retries };

  const headers: Record<string, string> = {};
  for (const raw of values.header ?? []) {
    const header = parseHeader(raw);
    if (typeof header === 'string') return { kind: 'error', message: header };
    headers[header.name] = header.value;
  }
  const metadata: Record<string, string> = {};
  for (const raw of values.metadata ?? []) {
    const entry = parseMetadata(raw);
    if (typeof entry === 'string') return { kind: 'error', message: entry };
    metadata[entry.key] = entry.value;
  }

  const stateFile = values['state-file'] === undefined ? defaultStateFile(context) : path.resolve(context.cwd, values['state-file']);

  return {
    kind: 'run',
    options: {
      paths: positionals,
      endpoint: endpoint.href,
      chunkSize,
      parallel,
      headers,
      metadata,
      stateFile,
      retries,
      quiet: values.quiet ?? false,
      includeHidden: values['include-hidden'] ?? false,
      followSymlinks: values['follow-symlinks'] ?? false,
    },
  };
}

/** Delays between retries: 0.5 s, 1 s, 2 s... doubling up to 30 s; tus-js-client starts over at the first after progress. */
export function retryDelays(retries: number): number[] {
  return Array.from({ length: retries }, (_, i) => Math.min(500 * 2 ** i, 30_000));
}
