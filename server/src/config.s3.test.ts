import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type Env, type ReadSecretFile } from './config.js';

const CWD = '/srv/app';
const S3 = { STORAGE: 's3', S3_BUCKET: 'tus-uploads' };

/** A readFile over an in-memory map of absolute paths. */
const files = (contents: Record<string, string>): ReadSecretFile => (file) => {
  const value = contents[file];
  if (value === undefined) throw new Error(`ENOENT: no such file or directory, open '${file}'`);
  return value;
};

function problems(env: Env, readFile: ReadSecretFile = files({})): string[] {
  try {
    parseConfig(env, CWD, readFile);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(env)}`);
}

describe('STORAGE=s3', () => {
  it('has defaults for everything but the bucket, and keeps STORAGE_DIR as the local directory', () => {
    expect(parseConfig(S3, CWD).storage).toEqual({
      kind: 's3',
      bucket: 'tus-uploads',
      endpoint: undefined,
      region: 'us-east-1',
      credentials: undefined,
      forcePathStyle: false,
      partSize: 8 * 1024 * 1024,
      prefix: '',
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 30_000,
      directory: '/srv/app/data/uploads',
      tempDirectory: '/srv/app/data/uploads/.s3-parts',
    });
  });

  it('reads every S3 variable', () => {
    const storage = parseConfig(
      {
        ...S3,
        S3_ENDPOINT: 'http://127.0.0.1:7480',
        S3_REGION: 'eu-west-3',
        S3_ACCESS_KEY_ID: 'AKIA123',
        S3_SECRET_ACCESS_KEY: 'secret/key',
        S3_FORCE_PATH_STYLE: 'true',
        S3_PART_SIZE: '16MiB',
        S3_PREFIX: 'tenant-1/uploads/',
        S3_CONNECT_TIMEOUT: '1500ms',
        S3_REQUEST_TIMEOUT: '2m',
        STORAGE_DIR: '/var/lib/tus',
      },
      CWD,
    ).storage;
    expect(storage).toMatchObject({
      kind: 's3',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-3',
      credentials: { accessKeyId: 'AKIA123', secretAccessKey: 'secret/key' },
      forcePathStyle: true,
      partSize: 16 * 1024 * 1024,
      prefix: 'tenant-1/uploads/',
      connectTimeoutMs: 1_500,
      requestTimeoutMs: 120_000,
      directory: '/var/lib/tus',
      tempDirectory: '/var/lib/tus/.s3-parts',
    });
  });

  it('reads the keys from files (relative to cwd, without the trailing newline)', () => {
    const readFile = files({ '/srv/app/secrets/id': 'AKIA123\n', '/run/secrets/key': 'secret\n' });
    const storage = parseConfig({ ...S3, S3_ACCESS_KEY_ID_FILE: 'secrets/id', S3_SECRET_ACCESS_KEY_FILE: '/run/secrets/key' }, CWD, readFile).storage;
    expect(storage).toMatchObject({ credentials: { accessKeyId: 'AKIA123', secretAccessKey: 'secret' } });
  });

  it('mixes a direct key with a key file', () => {
    const readFile = files({ '/run/secrets/key': 'secret' });
    const storage = parseConfig({ ...S3, S3_ACCESS_KEY_ID: 'AKIA123', S3_SECRET_ACCESS_KEY_FILE: '/run/secrets/key' }, CWD, readFile).storage;
    expect(storage).toMatchObject({ credentials: { accessKeyId: 'AKIA123', secretAccessKey: 'secret' } });
  });

  it('ignores the S3 variables with STORAGE=file', () => {
    expect(parseConfig({ S3_PREFIX: 'x/', S3_ACCESS_KEY_ID: 'lonely' }, CWD).storage).toEqual({ kind: 'file', directory: '/srv/app/data/uploads' });
  });

  it.each<[string, Env, RegExp]>([
    ['no bucket', { STORAGE: 's3' }, /^S3_BUCKET: required when STORAGE=s3$/],
    ['a bad bucket name', { ...S3, S3_BUCKET: 'Tus_Uploads' }, /^S3_BUCKET: expected an S3 bucket name/],
    ['a bad endpoint', { ...S3, S3_ENDPOINT: '127.0.0.1:7480' }, /^S3_ENDPOINT: expected an http\(s\) URL/],
    ['a bad region', { ...S3, S3_REGION: 'eu west' }, /^S3_REGION: expected a region name/],
    ['a small part size', { ...S3, S3_PART_SIZE: '4MiB' }, /^S3_PART_SIZE: expected a part size of at least 5MiB/],
    ['a bad part size', { ...S3, S3_PART_SIZE: 'big' }, /^S3_PART_SIZE: expected a size in bytes such as 8MiB, got "big"$/],
    ['a bad path style', { ...S3, S3_FORCE_PATH_STYLE: 'sure' }, /^S3_FORCE_PATH_STYLE: expected true or false/],
    ['an absolute prefix', { ...S3, S3_PREFIX: '/uploads/' }, /^S3_PREFIX: expected a relative key prefix/],
    ['a prefix with ..', { ...S3, S3_PREFIX: 'a/../b/' }, /^S3_PREFIX: expected a relative key prefix/],
    ['a prefix with odd characters', { ...S3, S3_PREFIX: 'a b/' }, /^S3_PREFIX: expected a key prefix of letters/],
    ['a key id without a secret', { ...S3, S3_ACCESS_KEY_ID: 'AKIA' }, /^S3_SECRET_ACCESS_KEY: required when S3_ACCESS_KEY_ID is set/],
    ['a secret without a key id', { ...S3, S3_SECRET_ACCESS_KEY: 'x' }, /^S3_ACCESS_KEY_ID: required when S3_SECRET_ACCESS_KEY is set/],
    ['a key id and its file', { ...S3, S3_ACCESS_KEY_ID: 'a', S3_ACCESS_KEY_ID_FILE: '/k', S3_SECRET_ACCESS_KEY: 's' }, /^S3_ACCESS_KEY_ID_FILE: set either S3_ACCESS_KEY_ID or S3_ACCESS_KEY_ID_FILE, not both$/],
    ['a missing key file', { ...S3, S3_ACCESS_KEY_ID_FILE: '/nope', S3_SECRET_ACCESS_KEY: 's' }, /^S3_ACCESS_KEY_ID_FILE: cannot read \/nope: ENOENT/],
    ['a connect timeout without a unit', { ...S3, S3_CONNECT_TIMEOUT: '5' }, /^S3_CONNECT_TIMEOUT: expected a duration with a unit such as 5s, got "5"$/],
    // No "0 to disable": a call without a limit is the hang these settings exist to prevent.
    ['a connect timeout of 0', { ...S3, S3_CONNECT_TIMEOUT: '0' }, /^S3_CONNECT_TIMEOUT: expected a duration with a unit such as 5s, got "0"$/],
    ['a request timeout of 0', { ...S3, S3_REQUEST_TIMEOUT: '0' }, /^S3_REQUEST_TIMEOUT: expected a duration with a unit such as 30s, got "0"$/],
    ['a bad request timeout', { ...S3, S3_REQUEST_TIMEOUT: 'soon' }, /^S3_REQUEST_TIMEOUT: expected a duration with a unit such as 30s, got "soon"$/],
  ])('rejects %s, naming the variable', (_what, env, message) => {
    const found = problems(env, files({ '/k': 'key' }));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(message);
  });

  it('rejects an empty key file', () => {
    expect(problems({ ...S3, S3_ACCESS_KEY_ID: 'a', S3_SECRET_ACCESS_KEY_FILE: '/k' }, files({ '/k': '\n' }))).toEqual(['S3_SECRET_ACCESS_KEY_FILE: /k is empty']);
  });

  it('does not read key files with STORAGE=file', () => {
    const readFile: ReadSecretFile = () => {
      throw new Error('read');
    };
    expect(() => parseConfig({ S3_ACCESS_KEY_ID_FILE: '/k', S3_SECRET_ACCESS_KEY_FILE: '/s' }, CWD, readFile)).not.toThrow();
  });
});
