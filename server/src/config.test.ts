import { createHash } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_MAX_UPLOAD_SIZE, parseConfig, type ReadSecretFile } from './config.js';

const CWD = '/srv/app';

function configError(env: Record<string, string>, readFile?: ReadSecretFile): ConfigError {
  try {
    parseConfig(env, CWD, readFile);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(env)}`);
}

describe('parseConfig defaults', () => {
  const config = parseConfig({}, CWD);

  it('listens on 0.0.0.0:8080', () => {
    expect(config.server.port).toBe(8080);
    expect(config.server.host).toBe('0.0.0.0');
  });

  it('mounts tus at /files without the trailing slash', () => {
    expect(config.tus.path).toBe('/files');
  });

  it('stores in ./data/uploads resolved against the working directory', () => {
    expect(config.storage).toEqual({ kind: 'file', directory: path.resolve(CWD, 'data/uploads') });
    expect(path.isAbsolute(config.storage.directory)).toBe(true);
  });

  it('accepts uploads up to 2 GiB', () => {
    expect(config.tus.maxUploadSize).toBe(2147483648);
    expect(DEFAULT_MAX_UPLOAD_SIZE).toBe(2147483648);
  });

  it('expires unfinished uploads after 24h and sweeps every 5m', () => {
    expect(config.tus.uploadExpiryMs).toBe(24 * 3600 * 1000);
    expect(config.tus.expirySweepIntervalMs).toBe(5 * 60 * 1000);
  });

  it('waits 30s on shutdown and cuts idle bodies after 60s', () => {
    expect(config.server.shutdownTimeoutMs).toBe(30_000);
    expect(config.server.idleTimeoutMs).toBe(60_000);
  });

  it('logs at info, allows any CORS origin, does not trust proxies', () => {
    expect(config.log.level).toBe('info');
    expect(config.cors.origins).toBe('*');
    expect(config.server.trustProxy).toBe(false);
  });

  it('treats empty and blank values as unset', () => {
    const blank = parseConfig({ PORT: '', HOST: '   ', MAX_UPLOAD_SIZE: '', UPLOAD_EXPIRY: ' ', CORS_ORIGINS: '' }, CWD);
    expect(blank.server.port).toBe(8080);
    expect(blank.server.host).toBe('0.0.0.0');
    expect(blank.tus.maxUploadSize).toBe(DEFAULT_MAX_UPLOAD_SIZE);
    expect(blank.tus.uploadExpiryMs).toBe(86_400_000);
    expect(blank.cors.origins).toBe('*');
  });

  it('ignores variables it does not know', () => {
    expect(() => parseConfig({ SOMETHING_ELSE: 'x', PATH: '/usr/bin' }, CWD)).not.toThrow();
  });
});

describe('parseConfig values', () => {
  it('reads port and host', () => {
    const config = parseConfig({ PORT: '0', HOST: '127.0.0.1' }, CWD);
    expect(config.server.port).toBe(0);
    expect(config.server.host).toBe('127.0.0.1');
    expect(parseConfig({ PORT: '65535' }, CWD).server.port).toBe(65535);
  });

  it.each([
    ['2GiB', 2 * 1024 ** 3],
    ['2 GiB', 2 * 1024 ** 3],
    ['500MB', 500_000_000],
    ['500mb', 500_000_000],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['10KiB', 10_240],
    ['1048576', 1_048_576],
    ['1TB', 1e12],
  ])('MAX_UPLOAD_SIZE=%s is %d bytes', (value, bytes) => {
    expect(parseConfig({ MAX_UPLOAD_SIZE: value }, CWD).tus.maxUploadSize).toBe(bytes);
  });

  it.each([
    ['24h', 86_400_000],
    ['90m', 5_400_000],
    ['1s', 1_000],
    ['1.5h', 5_400_000],
    ['7d', 7 * 86_400_000],
    ['0', 0],
  ])('UPLOAD_EXPIRY=%s is %d ms', (value, expected) => {
    expect(parseConfig({ UPLOAD_EXPIRY: value }, CWD).tus.uploadExpiryMs).toBe(expected);
  });

  it('reads the other durations', () => {
    const config = parseConfig({ SHUTDOWN_TIMEOUT: '10s', IDLE_TIMEOUT: '2m', EXPIRY_SWEEP_INTERVAL: '30s' }, CWD);
    expect(config.server.shutdownTimeoutMs).toBe(10_000);
    expect(config.server.idleTimeoutMs).toBe(120_000);
    expect(config.tus.expirySweepIntervalMs).toBe(30_000);
  });

  it.each([
    ['/files/', '/files'],
    ['/files', '/files'],
    ['/api/v1/uploads/', '/api/v1/uploads'],
    ['/a-b_c.d~e', '/a-b_c.d~e'],
  ])('TUS_PATH=%s becomes %s', (value, expected) => {
    expect(parseConfig({ TUS_PATH: value }, CWD).tus.path).toBe(expected);
  });

  it('resolves a relative STORAGE_DIR against cwd and keeps an absolute one', () => {
    expect(parseConfig({ STORAGE_DIR: 'uploads' }, CWD).storage.directory).toBe(path.resolve(CWD, 'uploads'));
    expect(parseConfig({ STORAGE_DIR: '/var/lib/tus' }, CWD).storage.directory).toBe('/var/lib/tus');
  });

  it('reads CORS origins as a trimmed list, and * anywhere as any origin', () => {
    expect(parseConfig({ CORS_ORIGINS: 'https://a.example.com, http://localhost:3000' }, CWD).cors.origins).toEqual([
      'https://a.example.com',
      'http://localhost:3000',
    ]);
    expect(parseConfig({ CORS_ORIGINS: 'https://a.example.com,*' }, CWD).cors.origins).toBe('*');
  });

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('TRUST_PROXY=%s is %s', (value, expected) => {
    expect(parseConfig({ TRUST_PROXY: value }, CWD).server.trustProxy).toBe(expected);
  });

  it.each(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])('LOG_LEVEL=%s is accepted', (level) => {
    expect(parseConfig({ LOG_LEVEL: level }, CWD).log.level).toBe(level);
  });

  it('trims surrounding whitespace', () => {
    const config = parseConfig({ PORT: ' 9000 ', MAX_UPLOAD_SIZE: ' 1MiB ' }, CWD);
    expect(config.server.port).toBe(9000);
    expect(config.tus.maxUploadSize).toBe(1_048_576);
  });
});

describe('parseConfig errors', () => {
  it.each([
    ['PORT', 'http', /^PORT: expected a port number from 0 to 65535, got "http"$/],
    ['PORT', '65536', /^PORT: expected a port number from 0 to 65535, got "65536"$/],
    ['PORT', '-1', /^PORT: expected a port number/],
    ['PORT', '80.5', /^PORT: expected a port number/],
    ['TUS_PATH', 'files', /^TUS_PATH: expected an absolute URL path such as \/files\//],
    ['TUS_PATH', '/files//x', /^TUS_PATH: expected an absolute URL path/],
    ['TUS_PATH', '/files?x=1', /^TUS_PATH: expected an absolute URL path/],
    ['TUS_PATH', '/', /^TUS_PATH: expected a path below the root such as \/files\//],
    ['STORAGE', 'ftp', /^STORAGE: expected one of: file, s3, got "ftp"$/],
    ['MAX_UPLOAD_SIZE', 'lots', /^MAX_UPLOAD_SIZE: expected a size in bytes such as 2147483648 or 2GiB, got "lots"$/],
    ['MAX_UPLOAD_SIZE', '2XB', /^MAX_UPLOAD_SIZE: expected a size in bytes/],
    ['MAX_UPLOAD_SIZE', '-5', /^MAX_UPLOAD_SIZE: expected a size in bytes/],
    ['MAX_UPLOAD_SIZE', '0', /^MAX_UPLOAD_SIZE: expected a size above 0 bytes$/],
    ['MAX_UPLOAD_SIZE', '1.5', /^MAX_UPLOAD_SIZE: expected a size in bytes/],
    ['MAX_UPLOAD_SIZE', '99999999999999999999', /^MAX_UPLOAD_SIZE: expected a size in bytes/],
    ['UPLOAD_EXPIRY', '24', /^UPLOAD_EXPIRY: expected a duration with a unit such as 24h or 90m, or 0 to disable, got "24"$/],
    ['UPLOAD_EXPIRY', 'soon', /^UPLOAD_EXPIRY: expected a duration with a unit/],
    ['UPLOAD_EXPIRY', '-1h', /^UPLOAD_EXPIRY: expected a duration with a unit/],
    ['EXPIRY_SWEEP_INTERVAL', '0', /^EXPIRY_SWEEP_INTERVAL: expected a duration with a unit such as 5m or 30s, got "0"$/],
    ['CORS_ORIGINS', 'app.example.com', /^CORS_ORIGINS: expected origins like https:\/\/app\.example\.com \(scheme and host, no path\), got "app\.example\.com"$/],
    ['CORS_ORIGINS', 'https://app.example.com/path', /^CORS_ORIGINS: expected origins like/],
    ['CORS_ORIGINS', ' , ,', /^CORS_ORIGINS: expected \* or a comma-separated list of origins/],
    ['LOG_LEVEL', 'verbose', /^LOG_LEVEL: expected one of: fatal, error, warn, info, debug, trace, silent, got "verbose"$/],
    ['SHUTDOWN_TIMEOUT', '30', /^SHUTDOWN_TIMEOUT: expected a duration with a unit such as 30s, got "30"$/],
    ['SHUTDOWN_TIMEOUT', '0', /^SHUTDOWN_TIMEOUT: expected a duration/],
    ['IDLE_TIMEOUT', 'a minute', /^IDLE_TIMEOUT: expected a duration with a unit such as 60s/],
    ['IDLE_TIMEOUT', '0', /^IDLE_TIMEOUT: expected a duration/],
    ['TRUST_PROXY', 'maybe', /^TRUST_PROXY: expected true or false, got "maybe"$/],
    ['REDIS_URL', 'localhost:6379', /^REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL such as redis:\/\/127\.0\.0\.1:6379$/],
    ['REDIS_URL', 'http://redis:6379', /^REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/],
    ['REDIS_URL', 'redis:/6379', /^REDIS_URL: expected a redis:\/\/ URL with a host/],
    ['REDIS_PREFIX', 'tus uploads', /^REDIS_PREFIX: expected up to 64 letters, digits and :\._- such as tus:$/],
  ])('%s=%s throws a ConfigError naming it', (name, value, message) => {
    const error = configError({ [name]: value });
    expect(error.name).toBe('ConfigError');
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(message);
    expect(error.message).toContain(`  - ${error.problems[0]}`);
    expect(error.message.startsWith('invalid configuration:\n')).toBe(true);
  });

  it('names every wrong variable at once', () => {
    const error = configError({ PORT: 'x', LOG_LEVEL: 'loud', MAX_UPLOAD_SIZE: 'big', HOST: 'localhost' });
    expect(error.problems).toHaveLength(3);
    expect(error.problems.map((p) => p.split(':')[0]).sort()).toEqual(['LOG_LEVEL', 'MAX_UPLOAD_SIZE', 'PORT']);
  });
});

describe('REDIS_URL', () => {
  it('is off by default: a single instance needs no service', () => {
    expect(parseConfig({}, CWD).redis).toBeUndefined();
  });

  it('takes redis:// and rediss:// URLs, with the tus: prefix unless REDIS_PREFIX says otherwise', () => {
    expect(parseConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }, CWD).redis).toEqual({ url: 'redis://127.0.0.1:6379', prefix: 'tus:' });
    expect(parseConfig({ REDIS_URL: 'rediss://:secret@cache.internal:6380/2', REDIS_PREFIX: 'uploads-eu:' }, CWD).redis).toEqual({
      url: 'rediss://:secret@cache.internal:6380/2',
      prefix: 'uploads-eu:',
    });
  });
});

describe('AUTH_*', () => {
  const SECRET = 'x'.repeat(32);

  it('is off by default: no token needed', () => {
    expect(parseConfig({}, CWD).auth).toBeUndefined();
  });

  const defaults = { apiKeys: [], adminScope: undefined, signedUrlSecret: undefined, signedUrlTtlMs: 15 * 60_000 };

  it('takes a shared secret, directly or from a file, with optional issuer, audience and maximum token age', () => {
    expect(parseConfig({ AUTH_JWT_SECRET: SECRET, AUTH_JWT_ISSUER: 'https://app.example.com', AUTH_JWT_AUDIENCE: 'uploads', AUTH_MAX_TOKEN_AGE: '1h' }, CWD).auth).toEqual({
      jwt: { kind: 'secret', secret: SECRET, issuer: 'https://app.example.com', audience: 'uploads', maxTokenAgeMs: 3_600_000 },
      ...defaults,
    });
    const fromFile = parseConfig({ AUTH_JWT_SECRET_FILE: 'secrets/jwt' }, CWD, (file) => (file === path.resolve(CWD, 'secrets/jwt') ? `${SECRET}\n` : ''));
    expect(fromFile.auth).toEqual({ jwt: { kind: 'secret', secret: SECRET, issuer: undefined, audience: undefined, maxTokenAgeMs: undefined }, ...defaults });
  });

  it('takes a JWKS URL, with the audience it then requires', () => {
    expect(parseConfig({ AUTH_JWKS_URL: 'https://auth.example.com/.well-known/jwks.json', AUTH_JWT_AUDIENCE: 'uploads' }, CWD).auth).toEqual({
      jwt: { kind: 'jwks', url: 'https://auth.example.com/.well-known/jwks.json', issuer: undefined, audience: 'uploads', maxTokenAgeMs: undefined },
      ...defaults,
    });
  });

  it('takes API keys from a file, keeping only their sha256', () => {
    const key = 'k'.repeat(40);
    const file = `# server-to-server clients\nbackend ${key}\n\nreports.v2   ${'r'.repeat(32)}\n`;
    const auth = parseConfig({ AUTH_API_KEYS_FILE: 'keys.txt', AUTH_ADMIN_SCOPE: 'uploads:admin' }, CWD, () => file).auth;
    expect(auth?.jwt).toBeUndefined();
    expect(auth?.adminScope).toBe('uploads:admin');
    expect(auth?.apiKeys.map((k) => k.id)).toEqual(['backend', 'reports.v2']);
    expect(auth?.apiKeys[0]?.sha256).toBe(createHash('sha256').update(key).digest('hex'));
    expect(JSON.stringify(auth)).not.toContain(key);
  });

  it('names a bad line of the API key file by number, never by its contents', () => {
    const error = configError({ AUTH_API_KEYS_FILE: 'keys.txt' }, () => 'backend short-key\n');
    expect(error.problems).toEqual(['AUTH_API_KEYS_FILE: line 1 of keys.txt is not "<id> <key>" (an id of letters, digits and ._-, a key of 32+ characters)']);
    expect(error.message).not.toContain('short-key');
  });

  it.each([
    [{ AUTH_JWT_SECRET: 'short' }, /^AUTH_JWT_SECRET: expected a secret of at least 32 characters$/],
    [{ AUTH_JWT_SECRET: SECRET, AUTH_JWKS_URL: 'https://auth.example.com/jwks.json' }, /^AUTH_JWKS_URL: set either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both$/],
    [{ AUTH_JWT_SECRET: SECRET, AUTH_JWT_SECRET_FILE: '/run/secrets/jwt' }, /^AUTH_JWT_SECRET_FILE: set either AUTH_JWT_SECRET or AUTH_JWT_SECRET_FILE, not both$/],
    [{ AUTH_JWKS_URL: 'ftp://auth.example.com/jwks' }, /^AUTH_JWKS_URL: expected an http\(s\) URL/],
    [{ AUTH_JWT_ISSUER: 'https://app.example.com' }, /^AUTH_JWT_ISSUER: only used with AUTH_JWT_SECRET or AUTH_JWKS_URL/],
    [{ AUTH_JWKS_URL: 'https://auth.example.com/jwks.json' }, /^AUTH_JWT_AUDIENCE: required with AUTH_JWKS_URL/],
    [{ AUTH_ADMIN_SCOPE: 'admin' }, /^AUTH_ADMIN_SCOPE: only used with/],
    [{ AUTH_JWT_SECRET: SECRET, AUTH_MAX_TOKEN_AGE: 'soon' }, /^AUTH_MAX_TOKEN_AGE: /],
    [{ AUTH_JWT_SECRET: SECRET, SIGNED_URL_SECRET: 'short' }, /^SIGNED_URL_SECRET: expected a secret of at least 32 characters$/],
  ])('%o is refused', (env, message) => {
    const error = configError(env);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(message);
  });

  it('holds a secret from a file to the same length rule', () => {
    const error = configError({ AUTH_JWT_SECRET_FILE: '/run/secrets/jwt' }, () => 'short\n');
    expect(error.problems).toEqual(['AUTH_JWT_SECRET_FILE: expected a secret of at least 32 characters']);
  });
});

describe('the parsed config', () => {
  it('is frozen all the way down', () => {
    const config = parseConfig({ CORS_ORIGINS: 'https://a.example.com' }, CWD);
    expect(Object.isFrozen(config)).toBe(true);
    for (const section of Object.values(config)) expect(Object.isFrozen(section)).toBe(true);
    expect(Object.isFrozen(config.cors.origins)).toBe(true);
    expect(() => {
      (config.server as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.cors.origins as string[]).push('https://evil.example.com');
    }).toThrow(TypeError);
    expect(config.server.port).toBe(8080);
  });

  it('depends only on the env it is given', () => {
    const a = parseConfig({ PORT: '1234' }, CWD);
    const b = parseConfig({ PORT: '1234' }, CWD);
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
  });
});
