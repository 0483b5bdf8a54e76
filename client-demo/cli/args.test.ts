import { describe, expect, it } from 'vitest';
import { DEFAULT_CHUNK_SIZE, DEFAULT_RETRIES, parseCliArgs, parseHeader, parseMetadata, retryDelays, type ArgsContext, type CliOptions } from './args.js';

const context: ArgsContext = { env: {}, homeDir: '/home/ada', cwd: '/work' };
const ENDPOINT = 'http://localhost:8080/files/';

function options(argv: string[], ctx: ArgsContext = context): CliOptions {
  const parsed = parseCliArgs(argv, ctx);
  if (parsed.kind !== 'run') throw new Error(`expected options, got ${JSON.stringify(parsed)}`);
  return parsed.options;
}

function error(argv: string[], ctx: ArgsContext = context): string {
  const parsed = parseCliArgs(argv, ctx);
  if (parsed.kind !== 'error') throw new Error(`expected an error, got ${JSON.stringify(parsed)}`);
  return parsed.message;
}

describe('parseCliArgs', () => {
  it('has finite, documented defaults', () => {
    expect(options(['video.mp4', '--endpoint', ENDPOINT])).toEqual({
      paths: ['video.mp4'],
      endpoint: ENDPOINT,
      chunkSize: DEFAULT_CHUNK_SIZE,
      parallel: 1,
      headers: {},
      metadata: {},
      stateFile: '/home/ada/.tus-upload-state.json',
      retries: DEFAULT_RETRIES,
      quiet: false,
      includeHidden: false,
      followSymlinks: false,
    });
    expect(DEFAULT_CHUNK_SIZE).toBe(8 * 1024 ** 2);
  });

  it('reads every option, long and short', () => {
    const parsed = options([
      'a.mp4',
      'folder',
      '-e',
      ENDPOINT,
      '-c',
      '512KiB',
      '-p',
      '4',
      '-H',
      'Authorization: Bearer abc.def',
      '--header',
      'X-Team:  video ',
      '-m',
      'album=summer',
      '--metadata',
      'note=a=b',
      '--state-file',
      'state.json',
      '--retries',
      '0',
      '--include-hidden',
      '--follow-symlinks',
      '-q',
    ]);
    expect(parsed).toEqual({
      paths: ['a.mp4', 'folder'],
      endpoint: ENDPOINT,
      chunkSize: 512 * 1024,
      parallel: 4,
      headers: { Authorization: 'Bearer abc.def', 'X-Team': 'video' },
      metadata: { album: 'summer', note: 'a=b' },
      stateFile: '/work/state.json',
      retries: 0,
      quiet: true,
      includeHidden: true,
      followSymlinks: true,
    });
  });

  it('takes the endpoint from TUS_ENDPOINT when --endpoint is absent, and --endpoint wins', () => {
    const env = { TUS_ENDPOINT: 'https://uploads.example.com/files/' };
    expect(options(['a'], { ...context, env }).endpoint).toBe('https://uploads.example.com/files/');
    expect(options(['a', '--endpoint', ENDPOINT], { ...context, env }).endpoint).toBe(ENDPOINT);
  });

  it('keeps the state in $XDG_STATE_HOME when it is set', () => {
    expect(options(['a', '-e', ENDPOINT], { ...context, env: { XDG_STATE_HOME: '/home/ada/.local/state' } }).stateFile).toBe('/home/ada/.local/state/tus-upload/state.json');
    // A relative XDG_STATE_HOME is invalid per the spec and ignored.
    expect(options(['a', '-e', ENDPOINT], { ...context, env: { XDG_STATE_HOME: 'state' } }).stateFile).toBe('/home/ada/.tus-upload-state.json');
  });

  it('answers --help before checking anything else', () => {
    expect(parseCliArgs(['--help'], context)).toEqual({ kind: 'help' });
    expect(parseCliArgs(['-h', '--chunk-size', 'nonsense'], context)).toEqual({ kind: 'help' });
  });

  it.each([
    [[], 'name at least one file or folder'],
    [['a'], 'say where to upload: --endpoint <url> (or set TUS_ENDPOINT)'],
    [['a', '-e', 'localhost:8080'], '--endpoint must be an http:// or https:// URL'],
    [['a', '-e', 'not a url'], 'is not a URL'],
    [['a', '-e', ENDPOINT, '--chunk-size', 'big'], '--chunk-size "big" is not a size'],
    [['a', '-e', ENDPOINT, '--chunk-size', '10'], '--chunk-size must be at least 1.0 KiB'],
    [['a', '-e', ENDPOINT, '--parallel', '0'], '--parallel must be from 1 to 16, got 0'],
    [['a', '-e', ENDPOINT, '--parallel', 'two'], '--parallel must be a whole number'],
    [['a', '-e', ENDPOINT, '--retries', '-1'], "Option '--retries' argument is ambiguous"],
    [['a', '-e', ENDPOINT, '--retries=-1'], '--retries must be a whole number from 0 to 100, got "-1"'],
    [['a', '-e', ENDPOINT, '--header', 'Authorization'], 'is not "Name: value"'],
    [['a', '-e', ENDPOINT, '--header', 'Upload-Offset: 0'], 'this header is set by the uploader'],
    [['a', '-e', ENDPOINT, '--metadata', 'novalue'], 'is not "key=value"'],
    [['a', '-e', ENDPOINT, '--verbose'], "Unknown option '--verbose'"],
  ])('%j is refused: %s', (argv, message) => {
    expect(error(argv)).toContain(message);
  });
});

describe('parseHeader', () => {
  it('splits at the first colon and trims', () => {
    expect(parseHeader('Authorization: Bearer a:b')).toEqual({ name: 'Authorization', value: 'Bearer a:b' });
  });

  it('refuses names that are not tokens and values with line breaks', () => {
    expect(parseHeader('Bad Name: x')).toContain('not a valid header name');
    expect(parseHeader('X-A: b\r\nX-Injected: c')).toContain('line breaks');
  });
});

describe('parseMetadata', () => {
  it('splits at the first "=" and allows an empty value', () => {
    expect(parseMetadata('a=b=c')).toEqual({ key: 'a', value: 'b=c' });
    expect(parseMetadata('flag=')).toEqual({ key: 'flag', value: '' });
  });

  it('refuses keys with spaces or commas (tus: "MUST NOT contain spaces and commas")', () => {
    expect(parseMetadata('my key=x')).toContain('without spaces or commas');
    expect(parseMetadata('a,b=x')).toContain('without spaces or commas');
  });
});

describe('retryDelays', () => {
  it('doubles from 0.5 s up to 30 s', () => {
    expect(retryDelays(0)).toEqual([]);
    expect(retryDelays(10)).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  });
});
