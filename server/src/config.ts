import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { isMediaTypePattern } from './media-types.js';
import { parseByteSize } from './units/byte-size.js';
import { parseDuration } from './units/duration.js';

/** The environment variables the server understands; main.ts hands process.env to parseConfig. */
export type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const STORAGE_KINDS = ['file', 's3'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** S3's smallest multipart part (except the last): the floor of `S3_PART_SIZE`. */
export const MIN_S3_PART_SIZE = 5 * 1024 ** 2;

/** The built-in processors PROCESSORS chooses from and orders (server/src/processing/index.ts). */
export const BUILTIN_PROCESSORS = ['size', 'sha256', 'type', 'media', 'poster'] as const;
export type BuiltinProcessor = (typeof BUILTIN_PROCESSORS)[number];

/** 2 GiB: the product's promise, and the default `MAX_UPLOAD_SIZE`. */
export const DEFAULT_MAX_UPLOAD_SIZE = 2 * 1024 ** 3;

const byteSize = (example: string) =>
  z.string().transform((value, ctx) => {
    const bytes = parseByteSize(value);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size in bytes such as ${example}, got "${value}"` });
      return z.NEVER;
    }
    return bytes;
  });

const duration = (example: string, { allowZero }: { allowZero: boolean }) =>
  z.string().transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || (!allowZero && ms === 0)) {
      const zero = allowZero ? ', or 0 to disable' : '';
      ctx.addIssue({ code: 'custom', message: `expected a duration with a unit such as ${example}${zero}, got "${value}"` });
      return z.NEVER;
    }
    return ms;
  });

const list = z.string().transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

const positiveInt = (what: string, max: number) =>
  z.string().transform((value, ctx) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected ${what} from 1 to ${max}, got "${value}"` });
      return z.NEVER;
    }
    return n;
  });

/** A count where 0 switches the limit off. */
const limit = (what: string, max: number) =>
  z.string().transform((value, ctx) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected ${what} from 0 (no limit) to ${max}, got "${value}"` });
      return z.NEVER;
    }
    return n;
  });

const boolean = z.enum(['true', 'false', '1', '0', 'yes', 'no'], {
  error: (issue) => `expected true or false, got "${String(issue.input)}"`,
}).transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * The raw schema: one entry per environment variable, with its default.
 * Keep the README's configuration table in step with this list.
 */
const envSchema = z.object({
  /** TCP port to listen on; 0 picks a free one. @default 8080 */
  PORT: z
    .string()
    .transform((value, ctx) => {
      const port = Number(value);
      if (!/^\d+$/.test(value) || port > 65535) {
        ctx.addIssue({ code: 'custom', message: `expected a port number from 0 to 65535, got "${value}"` });
        return z.NEVER;
      }
      return port;
    })
    .default(8080),
  /** Interface to bind. @default 0.0.0.0 */
  HOST: z.string().min(1, 'expected a host name or IP address').default('0.0.0.0'),
  /** URL path the tus endpoint is mounted at: POST creates there, uploads live below it. @default /files/ */
  TUS_PATH: z.string().default('/files/').refine((p) => /^\/[A-Za-z0-9._~\-/]*$/.test(p) && !p.includes('//'), {
    message: 'expected an absolute URL path such as /files/',
  }),
  /** Directory for uploads with the file storage; with S3, the local directory for processing state and part buffers. @default ./data/uploads */
  STORAGE_DIR: z.string().min(1, 'expected a directory path').default('./data/uploads'),
  /** Free space STORAGE_DIR must keep (with S3, where parts are buffered): below it new uploads get 507 and /readyz 503, uploads in progress may finish; 0 disables. @default 1GiB */
  MIN_FREE_SPACE: byteSize('1GiB or 500MB, or 0 to disable').default(1024 ** 3),
  /** Storage kind: file (local disk) or s3 (an S3-compatible bucket). @default file */
  STORAGE: z.enum(STORAGE_KINDS, { error: (issue) => `expected one of: ${STORAGE_KINDS.join(', ')}, got "${String(issue.input)}"` }).default('file'),
  /** Bucket that holds the uploads; required with STORAGE=s3. @default (none) */
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name such as tus-uploads (3 to 63 lower-case letters, digits, dots and hyphens)').optional(),
  /** S3 endpoint URL for S3-compatible services (Ceph, MinIO, R2); unset uses AWS. @default (none) */
  S3_ENDPOINT: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as http://127.0.0.1:7480' }).optional(),
  /** S3 region. @default us-east-1 */
  S3_REGION: z.string().regex(/^[A-Za-z0-9-]+$/, 'expected a region name such as us-east-1').default('us-east-1'),
  /** S3 access key id; unset uses the AWS SDK's default credential chain. @default (none) */
  S3_ACCESS_KEY_ID: z.string().optional(),
  /** File holding the S3 access key id (instead of S3_ACCESS_KEY_ID), e.g. a Docker secret. @default (none) */
  S3_ACCESS_KEY_ID_FILE: z.string().optional(),
  /** S3 secret access key; required with S3_ACCESS_KEY_ID. @default (none) */
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  /** File holding the S3 secret access key (instead of S3_SECRET_ACCESS_KEY). @default (none) */
  S3_SECRET_ACCESS_KEY_FILE: z.string().optional(),
  /** Address the bucket as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT (most S3-compatible services need this). @default false */
  S3_FORCE_PATH_STYLE: boolean.default(false),
  /** Size of the multipart parts sent to S3 (5MiB or more). @default 8MiB */
  S3_PART_SIZE: byteSize('8MiB')
    .refine((n) => n >= MIN_S3_PART_SIZE, 'expected a part size of at least 5MiB (S3\'s smallest part)')
    .default(8 * 1024 ** 2),
  /** Prefix of every object key, such as uploads/. @default (none) */
  S3_PREFIX: z.string().regex(/^[A-Za-z0-9!_.*'()/-]*$/, "expected a key prefix of letters, digits and !_.*'()/- such as uploads/")
    .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), 'expected a relative key prefix such as uploads/, without a leading / or ..')
    .optional(),
  /** How long an S3 call may take to connect (TCP and TLS) before it fails with 503. @default 5s */
  S3_CONNECT_TIMEOUT: duration('5s', { allowZero: false }).default(5_000),
  /** How long an S3 call may go without sending or receiving a byte before it fails with 503 (an idle limit: a slow part that keeps moving is not cut). @default 30s */
  S3_REQUEST_TIMEOUT: duration('30s', { allowZero: false }).default(30_000),
  /** Redis shared by several instances (locks, processing queue, status, S3 metadata cache); unset keeps that state local. @default (none) */
  REDIS_URL: z
    .url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379', abort: true })
    .refine((url) => new URL(url).hostname !== '', 'expected a redis:// URL with a host, such as redis://127.0.0.1:6379')
    .optional(),
  /** Prefix of every Redis key; instances that share uploads share it, other deployments on the same Redis use another. @default tus: */
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9:._-]{1,64}$/, 'expected up to 64 letters, digits and :._- such as tus:').default('tus:'),
  /** HS256 key that signs the bearer tokens clients must send (32+ characters); unset with AUTH_JWKS_URL unset, no token is needed. @default (none) */
  AUTH_JWT_SECRET: z.string().min(32, 'expected a secret of at least 32 characters').optional(),
  /** File holding AUTH_JWT_SECRET (instead of the variable), e.g. a Docker secret. @default (none) */
  AUTH_JWT_SECRET_FILE: z.string().optional(),
  /** URL of the JSON Web Key Set whose keys sign the bearer tokens (an identity provider's, RS256/ES256/EdDSA). @default (none) */
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://auth.example.com/.well-known/jwks.json' }).optional(),
  /** Issuer (`iss`) every token must carry. @default (any) */
  AUTH_JWT_ISSUER: z.string().optional(),
  /** Audience (`aud`) every token must include; required with AUTH_JWKS_URL (an identity provider issues tokens for other applications too). @default (any) */
  AUTH_JWT_AUDIENCE: z.string().optional(),
  /** Oldest token accepted, from its `iat` (which it must then carry); tokens always need `exp`. @default (no limit beyond exp) */
  AUTH_MAX_TOKEN_AGE: duration('1h or 15m', { allowZero: false }).optional(),
  /** A token whose `scope` (or `scp`) includes this value may see and change every upload. @default (none) */
  AUTH_ADMIN_SCOPE: z.string().regex(/^\S+$/, 'expected one scope value without spaces, such as uploads:admin').optional(),
  /** File of API keys for server-to-server clients, one `<id> <key>` per line (key 32+ characters; # comments). @default (none) */
  AUTH_API_KEYS_FILE: z.string().optional(),
  /** Key that signs download and status-stream links (32+ characters); shared by every instance. @default derived from AUTH_JWT_SECRET, else random per process */
  SIGNED_URL_SECRET: z.string().min(32, 'expected a secret of at least 32 characters').optional(),
  /** How long a signed download or status-stream link stays valid. @default 15m */
  SIGNED_URL_TTL: duration('15m or 1h', { allowZero: false }).default(15 * 60_000),
  /** Largest upload accepted, in bytes (units such as 2GiB or 500MB are accepted). @default 2147483648 */
  MAX_UPLOAD_SIZE: byteSize('2147483648 or 2GiB')
    .refine((n) => n > 0, 'expected a size above 0 bytes')
    .default(DEFAULT_MAX_UPLOAD_SIZE),
  /** How long an unfinished upload lives after creation; 0 keeps them forever. @default 24h */
  UPLOAD_EXPIRY: duration('24h or 90m', { allowZero: true }).default(24 * 3600_000),
  /** Keep the partial uploads of a concatenation after the final upload is built (they still expire). @default false */
  CONCAT_KEEP_PARTIALS: boolean.default(false),
  /** How often expired unfinished uploads are swept away. @default 5m */
  EXPIRY_SWEEP_INTERVAL: duration('5m or 30s', { allowZero: false }).default(5 * 60_000),
  /** Browser origins allowed by CORS, comma separated, or * for any. @default * */
  CORS_ORIGINS: z.string().default('*').transform((value, ctx) => {
    const origins = value.split(',').map((o) => o.trim()).filter(Boolean);
    if (origins.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'expected * or a comma-separated list of origins such as https://app.example.com' });
      return z.NEVER;
    }
    if (origins.includes('*')) return '*' as const;
    for (const origin of origins) {
      if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
        ctx.addIssue({ code: 'custom', message: `expected origins like https://app.example.com (scheme and host, no path), got "${origin}"` });
        return z.NEVER;
      }
    }
    return origins;
  }),
  /** pino log level. @default info */
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: (issue) => `expected one of: ${LOG_LEVELS.join(', ')}, got "${String(issue.input)}"` }).default('info'),
  /** Bearer token a Prometheus scraper must send to GET /metrics (16+ characters); unset leaves /metrics open. @default (none) */
  METRICS_TOKEN: z.string().min(16, 'expected a token of at least 16 characters').optional(),
  /** How long shutdown waits for in-flight requests before exiting. @default 30s */
  SHUTDOWN_TIMEOUT: duration('30s', { allowZero: false }).default(30_000),
  /** An upload request that sends no byte for this long is ended; what arrived is kept. @default 60s */
  IDLE_TIMEOUT: duration('60s', { allowZero: false }).default(60_000),
  /** Trust X-Forwarded-Host/-Proto and Forwarded from a reverse proxy when building upload URLs. @default false */
  TRUST_PROXY: boolean.default(false),

  /** Endpoint that receives every hook as a signed JSON POST; unset disables HTTP hooks. @default (none) */
  HOOKS_URL: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://hooks.example.com/tus' }).optional(),
  /** HMAC-SHA256 key for the Hook-Signature header; required with HOOKS_URL. @default (none) */
  HOOKS_SECRET: z.string().min(16, 'expected a secret of at least 16 characters').optional(),
  /** How long a blocking hook (pre-create, pre-finish, pre-terminate) may take. @default 5s */
  HOOKS_TIMEOUT: duration('5s', { allowZero: false }).default(5_000),
  /** Delivery attempts for a notifying hook before it is given up. @default 10 */
  HOOKS_MAX_ATTEMPTS: positiveInt('a number of attempts', 100).default(10),
  /** First retry delay of a notifying hook; it doubles per attempt, up to 5 minutes. @default 1s */
  HOOKS_RETRY_DELAY: duration('1s', { allowZero: false }).default(1_000),
  /** Least time between two post-receive (progress) hooks of one upload. @default 1s */
  POST_RECEIVE_INTERVAL: duration('1s', { allowZero: false }).default(1_000),
  /** Types an upload may have, comma separated (video/*,image/png); checked on the declared and the real type. @default (any) */
  ALLOWED_TYPES: list.pipe(
    z.array(z.string().toLowerCase().refine(isMediaTypePattern, { message: 'expected media types such as video/* or image/png, comma separated' })),
  ).default([]),
  /** Metadata keys every upload must carry, comma separated (filename,filetype). @default (none) */
  REQUIRED_METADATA: list.pipe(z.array(z.string().regex(/^[^\s,]+$/, 'expected metadata keys without spaces, comma separated'))).default([]),
  /** Largest Upload-Metadata header accepted. @default 4KiB */
  MAX_METADATA_SIZE: byteSize('4KiB')
    .refine((n) => n > 0, 'expected a size above 0 bytes')
    .default(4096),
  /** Delete the bytes of an upload that processing rejects (its status stays). @default false */
  DELETE_REJECTED: boolean.default(false),
  /** Built-in processors to run, in order, comma separated (media and poster need ffprobe and ffmpeg). @default size,sha256,type,media,poster */
  PROCESSORS: list
    .pipe(z.array(z.enum(BUILTIN_PROCESSORS, { error: (issue) => `expected processors among ${BUILTIN_PROCESSORS.join(', ')}, got "${String(issue.input)}"` })))
    .refine((names) => new Set(names).size === names.length, 'expected each processor once')
    .default([...BUILTIN_PROCESSORS]),
  /** Width of the poster frame in pixels (its height follows the video's aspect ratio). @default 640 */
  POSTER_WIDTH: positiveInt('a width in pixels', 4096).default(640),
  /** Longest run of one ffprobe or ffmpeg (media, poster); the process group is killed after it. @default 60s */
  MEDIA_TIMEOUT: duration('60s', { allowZero: false }).default(60_000),
  /** Address space of one ffprobe or ffmpeg run (prlimit --as); 0 for no limit. @default 1GiB */
  MEDIA_MEMORY_LIMIT: byteSize('1GiB, or 0 for no limit').default(1024 ** 3),
  /** The ffprobe executable: a name looked up in /usr/local/bin:/usr/bin:/bin, or an absolute path. @default ffprobe */
  FFPROBE_PATH: z.string().min(1).default('ffprobe'),
  /** The ffmpeg executable, like FFPROBE_PATH. @default ffmpeg */
  FFMPEG_PATH: z.string().min(1).default('ffmpeg'),
  /** Delete an upload's bytes once it was processed (done) and the post-process hook delivered; its status and poster stay, GET answers 410. @default false */
  DELETE_AFTER_PROCESSING: boolean.default(false),
  /** Attempts of a processing step before the upload ends failed. @default 5 */
  PROCESSING_MAX_ATTEMPTS: positiveInt('a number of attempts', 100).default(5),
  /** First retry delay of a failed processing step; it doubles per attempt. @default 1s */
  PROCESSING_RETRY_DELAY: duration('1s', { allowZero: false }).default(1_000),
  /** Uploads processed at once. @default 2 */
  PROCESSING_CONCURRENCY: positiveInt('a number', 64).default(2),
  /** Unfinished uploads one subject (a token's subject, else a client IP) may have at once; 0 for no limit. @default 100 */
  MAX_UPLOADS_IN_PROGRESS: limit('a number of uploads', 1_000_000).default(100),
  /** Uploads one subject may create per minute (a folder of small files dropped at once is hundreds); 0 for no limit. @default 600 */
  MAX_CREATIONS_PER_MINUTE: limit('a number of uploads', 1_000_000).default(600),
  /** Bytes one subject's unfinished uploads may declare together (their Upload-Length); 0 for no limit. @default 20GiB */
  MAX_UNFINISHED_BYTES: byteSize('20GiB, or 0 for no limit').default(20 * 1024 ** 3),
  /** Status event streams (/uploads/<id>/events) one subject may hold open at once; 0 for no limit. @default 20 */
  MAX_EVENT_STREAMS: limit('a number of streams', 1_000_000).default(20),
  /** Slowest average rate (bytes per second, over MIN_UPLOAD_RATE_WINDOW) of an upload body; a slower one is ended, keeping what arrived; 0 disables. @default 1KiB */
  MIN_UPLOAD_RATE: byteSize('1KiB, or 0 to disable').default(1024),
  /** The window MIN_UPLOAD_RATE is averaged over. @default 60s */
  MIN_UPLOAD_RATE_WINDOW: duration('60s', { allowZero: false }).default(60_000),
  /** Connections the server holds at once (Node's server.maxConnections); more are closed at once; 0 for no limit. @default 1000 */
  MAX_CONNECTIONS: limit('a number of connections', 1_000_000).default(1000),
  /** Serve uploads that processing rejected; otherwise their GET answers 403 with the reason. @default false */
  SERVE_REJECTED: boolean.default(false),
  /** How long a finished upload is kept after its creation; the expiry sweep removes older ones as it removes expired ones. 0 keeps them. @default 0 */
  FINISHED_UPLOAD_RETENTION: duration('30d or 12h', { allowZero: true }).default(0),
  /** How long delivered and dead hook jobs are remembered by the queue before they are pruned. @default 7d */
  JOB_RETENTION: duration('7d or 24h', { allowZero: false }).default(7 * 24 * 3600_000),
});

type Defaults<T> = { [K in keyof T]: T[K] };

/** Every environment variable the server reads (the README's configuration table lists these). */
export const CONFIG_VARIABLES = Object.freeze(Object.keys(envSchema.shape)) as readonly (keyof typeof envSchema.shape)[];

export type Config = Readonly<{
  server: Readonly<{
    port: number;
    host: string;
    idleTimeoutMs: number;
    shutdownTimeoutMs: number;
    trustProxy: boolean;
    /** Upload bodies slower than this on average over the window are cut (0: never). */
    minUploadRate: Readonly<{ bytesPerSecond: number; windowMs: number }>;
    /** Node's server.maxConnections; 0 for no limit. */
    maxConnections: number;
  }>;
  /** Per-subject abuse limits (a token's subject, or the client IP when authentication is off); 0 switches one off. */
  limits: Readonly<{ uploadsInProgress: number; creationsPerMinute: number; unfinishedBytes: number; eventStreams: number }>;
  tus: Readonly<{
    /** Always ends without a slash: "/files". Upload URLs are `${path}/${id}`. */
    path: string;
    maxUploadSize: number;
    /** 0 means unfinished uploads never expire. */
    uploadExpiryMs: number;
    expirySweepIntervalMs: number;
    /** Partial uploads stay after their final upload is built (concatenation). */
    keepPartials: boolean;
    /** Finished uploads older than this (from creation) are removed by the expiry sweep; 0 keeps them. */
    finishedRetentionMs: number;
  }>;
  /**
   * Where uploads live. `directory` exists for both kinds: with S3 it holds the local
   * processing state (queue, status records) and `tempDirectory` the buffered parts.
   */
  storage: FileStorageConfig | S3StorageConfig;
  cors: Readonly<{ origins: '*' | readonly string[] }>;
  log: Readonly<{ level: LogLevel }>;
  /** GET /metrics needs `Authorization: Bearer <token>` when set. */
  metrics: Readonly<{ token: string | undefined }>;
  /** Free bytes the storage directory keeps before new uploads are refused; 0: no check. */
  freeSpace: Readonly<{ minimumBytes: number }>;
  hooks: Readonly<{
    http: Readonly<{ url: string; secret: string; timeoutMs: number }> | undefined;
    /** Time limit of blocking hooks, HTTP or library. */
    timeoutMs: number;
    maxAttempts: number;
    retryDelayMs: number;
    postReceiveIntervalMs: number;
  }>;
  validation: Readonly<{ allowedTypes: readonly string[]; requiredMetadata: readonly string[]; maxMetadataBytes: number }>;
  processing: Readonly<{
    deleteRejected: boolean;
    maxAttempts: number;
    retryDelayMs: number;
    concurrency: number;
    /** GET serves uploads processing rejected (otherwise 403). */
    serveRejected: boolean;
    /** Delivered and dead hook jobs are pruned from the queue after this. */
    jobRetentionMs: number;
    /** The built-in processors, in order (PROCESSORS). */
    processors: readonly BuiltinProcessor[];
    /** Delete the bytes of a processed upload once the post-process hook is delivered. */
    deleteAfterProcessing: boolean;
  }>;
  /** ffprobe and ffmpeg for the media and poster processors. */
  media: Readonly<{ ffprobe: string; ffmpeg: string; timeoutMs: number; memoryBytes: number; posterWidth: number }>;
  /** Set when uploads need a bearer token (a JWT): how it is checked. */
  auth: AuthConfig | undefined;
  /** Set for several instances: locks, the job queue, status and the S3 metadata cache live in Redis. */
  redis: Readonly<{ url: string; prefix: string }> | undefined;
}>;

/** Tokens are JWTs signed with a shared secret (HS256) or by keys from a JWKS URL. */
export type JwtAuthConfig = Readonly<
  ({ kind: 'secret'; secret: string } | { kind: 'jwks'; url: string }) & { issuer: string | undefined; audience: string | undefined; maxTokenAgeMs: number | undefined }
>;

/** An API key as the server keeps it: its id and the sha256 of the key, never the key. */
export type ApiKeyRecord = Readonly<{ id: string; sha256: string }>;

/** Who may use the server: JWTs, API keys, or both. Undefined (no AuthConfig) when it is open. */
export type AuthConfig = Readonly<{
  jwt: JwtAuthConfig | undefined;
  apiKeys: readonly ApiKeyRecord[];
  adminScope: string | undefined;
  /** Signs download and status-stream links; undefined: derived at start (see createApp). */
  signedUrlSecret: string | undefined;
  signedUrlTtlMs: number;
}>;

export type FileStorageConfig = Readonly<{ kind: 'file'; directory: string }>;

export type S3StorageConfig = Readonly<{
  kind: 's3';
  bucket: string;
  /** Unset means AWS S3 itself. */
  endpoint: string | undefined;
  region: string;
  /** Unset uses the AWS SDK's default credential chain (environment, profile, instance role). */
  credentials: Readonly<{ accessKeyId: string; secretAccessKey: string }> | undefined;
  forcePathStyle: boolean;
  partSize: number;
  /** Prepended to every object key; '' for none. */
  prefix: string;
  /** Longest wait for a connection to S3 (S3_CONNECT_TIMEOUT). */
  connectTimeoutMs: number;
  /** Longest silence on a connection to S3, sending or receiving (S3_REQUEST_TIMEOUT). */
  requestTimeoutMs: number;
  /** Local directory for processing state (STORAGE_DIR). */
  directory: string;
  /** Local directory where parts are buffered before they are sent (inside `directory`). */
  tempDirectory: string;
}>;

/** Reads a secret file named by an `X_FILE` variable; injectable so tests need no files. */
export type ReadSecretFile = (file: string) => string;

const readSecretFile: ReadSecretFile = (file) => fs.readFileSync(file, 'utf8');

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Parses the environment once into a typed, frozen Config. Pure: it reads only `env`.
 * Empty strings count as unset, so `PORT= npm start` falls back to the default.
 * Throws ConfigError naming every wrong variable and what was expected.
 */
export function parseConfig(env: Env, cwd = process.cwd(), readFile: ReadSecretFile = readSecretFile): Config {
  const present: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') present[key] = value.trim();
  }
  const result = envSchema.safeParse(present);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`));
  }
  const e: Defaults<z.output<typeof envSchema>> = result.data;
  const tusPath = e.TUS_PATH.replace(/\/+$/, '');
  const problems: string[] = [];
  if (tusPath === '') problems.push('TUS_PATH: expected a path below the root such as /files/, not "/"');
  if (tusPath === '/uploads' || tusPath.startsWith('/uploads/')) problems.push('TUS_PATH: /uploads is the status resource; choose another path such as /files/');
  if (e.HOOKS_URL && !e.HOOKS_SECRET) problems.push('HOOKS_SECRET: required when HOOKS_URL is set, so receivers can verify what they get');
  const storage = storageConfig(e, path.resolve(cwd, e.STORAGE_DIR), cwd, readFile, problems);
  const auth = authConfig(e, cwd, readFile, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze({
    server: {
      port: e.PORT,
      host: e.HOST,
      idleTimeoutMs: e.IDLE_TIMEOUT,
      shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
      trustProxy: e.TRUST_PROXY,
      minUploadRate: { bytesPerSecond: e.MIN_UPLOAD_RATE, windowMs: e.MIN_UPLOAD_RATE_WINDOW },
      maxConnections: e.MAX_CONNECTIONS,
    },
    limits: {
      uploadsInProgress: e.MAX_UPLOADS_IN_PROGRESS,
      creationsPerMinute: e.MAX_CREATIONS_PER_MINUTE,
      unfinishedBytes: e.MAX_UNFINISHED_BYTES,
      eventStreams: e.MAX_EVENT_STREAMS,
    },
    tus: {
      path: tusPath,
      maxUploadSize: e.MAX_UPLOAD_SIZE,
      uploadExpiryMs: e.UPLOAD_EXPIRY,
      expirySweepIntervalMs: e.EXPIRY_SWEEP_INTERVAL,
      keepPartials: e.CONCAT_KEEP_PARTIALS,
      finishedRetentionMs: e.FINISHED_UPLOAD_RETENTION,
    },
    storage,
    cors: { origins: e.CORS_ORIGINS },
    log: { level: e.LOG_LEVEL },
    metrics: { token: e.METRICS_TOKEN },
    freeSpace: { minimumBytes: e.MIN_FREE_SPACE },
    hooks: {
      http: e.HOOKS_URL && e.HOOKS_SECRET ? { url: e.HOOKS_URL, secret: e.HOOKS_SECRET, timeoutMs: e.HOOKS_TIMEOUT } : undefined,
      timeoutMs: e.HOOKS_TIMEOUT,
      maxAttempts: e.HOOKS_MAX_ATTEMPTS,
      retryDelayMs: e.HOOKS_RETRY_DELAY,
      postReceiveIntervalMs: e.POST_RECEIVE_INTERVAL,
    },
    validation: { allowedTypes: e.ALLOWED_TYPES, requiredMetadata: e.REQUIRED_METADATA, maxMetadataBytes: e.MAX_METADATA_SIZE },
    processing: {
      deleteRejected: e.DELETE_REJECTED,
      maxAttempts: e.PROCESSING_MAX_ATTEMPTS,
      retryDelayMs: e.PROCESSING_RETRY_DELAY,
      concurrency: e.PROCESSING_CONCURRENCY,
      serveRejected: e.SERVE_REJECTED,
      jobRetentionMs: e.JOB_RETENTION,
      processors: e.PROCESSORS,
      deleteAfterProcessing: e.DELETE_AFTER_PROCESSING,
    },
    media: { ffprobe: e.FFPROBE_PATH, ffmpeg: e.FFMPEG_PATH, timeoutMs: e.MEDIA_TIMEOUT, memoryBytes: e.MEDIA_MEMORY_LIMIT, posterWidth: e.POSTER_WIDTH },
    auth,
    redis: e.REDIS_URL ? { url: e.REDIS_URL, prefix: e.REDIS_PREFIX } : undefined,
  });
}

/**
 * A secret given directly (`X`) or as a file (`X_FILE`), never both. The file's contents
 * are read now, relative to `cwd`, without a trailing newline.
 */
function secret(
  e: Defaults<z.output<typeof envSchema>>,
  name: 'S3_ACCESS_KEY_ID' | 'S3_SECRET_ACCESS_KEY' | 'AUTH_JWT_SECRET',
  cwd: string,
  readFile: ReadSecretFile,
  problems: string[],
): string | undefined {
  const direct = e[name];
  const file = e[`${name}_FILE`];
  if (direct !== undefined && file !== undefined) {
    problems.push(`${name}_FILE: set either ${name} or ${name}_FILE, not both`);
    return undefined;
  }
  if (file === undefined) return direct;
  let contents: string;
  try {
    contents = readFile(path.resolve(cwd, file));
  } catch (error) {
    problems.push(`${name}_FILE: cannot read ${file}: ${(error as Error).message}`);
    return undefined;
  }
  const value = contents.replace(/\r?\n$/, '');
  if (value.trim() === '') {
    problems.push(`${name}_FILE: ${file} is empty`);
    return undefined;
  }
  return value;
}

function authConfig(e: Defaults<z.output<typeof envSchema>>, cwd: string, readFile: ReadSecretFile, problems: string[]): AuthConfig | undefined {
  const jwt = jwtConfig(e, cwd, readFile, problems);
  const apiKeys = e.AUTH_API_KEYS_FILE === undefined ? [] : apiKeysFrom(e.AUTH_API_KEYS_FILE, cwd, readFile, problems);
  if (!jwt && apiKeys.length === 0) {
    if (e.AUTH_ADMIN_SCOPE !== undefined) problems.push('AUTH_ADMIN_SCOPE: only used with AUTH_JWT_SECRET or AUTH_JWKS_URL, which is not set');
    if (e.AUTH_MAX_TOKEN_AGE !== undefined) problems.push('AUTH_MAX_TOKEN_AGE: only used with AUTH_JWT_SECRET or AUTH_JWKS_URL, which is not set');
    return undefined;
  }
  return { jwt, apiKeys, adminScope: e.AUTH_ADMIN_SCOPE, signedUrlSecret: e.SIGNED_URL_SECRET, signedUrlTtlMs: e.SIGNED_URL_TTL };
}

function jwtConfig(e: Defaults<z.output<typeof envSchema>>, cwd: string, readFile: ReadSecretFile, problems: string[]): JwtAuthConfig | undefined {
  const secretValue = secret(e, 'AUTH_JWT_SECRET', cwd, readFile, problems);
  const claims = { issuer: e.AUTH_JWT_ISSUER, audience: e.AUTH_JWT_AUDIENCE, maxTokenAgeMs: e.AUTH_MAX_TOKEN_AGE };
  if (secretValue !== undefined && e.AUTH_JWKS_URL !== undefined) {
    problems.push('AUTH_JWKS_URL: set either AUTH_JWT_SECRET or AUTH_JWKS_URL, not both');
    return undefined;
  }
  if (secretValue !== undefined) {
    // The file's contents get the same rule as the variable.
    if (secretValue.length < 32) problems.push('AUTH_JWT_SECRET_FILE: expected a secret of at least 32 characters');
    return { kind: 'secret', secret: secretValue, ...claims };
  }
  if (e.AUTH_JWKS_URL !== undefined) {
    // An identity provider signs tokens for every application it serves: without an audience,
    // a token issued for another application would open this server.
    if (claims.audience === undefined) problems.push('AUTH_JWT_AUDIENCE: required with AUTH_JWKS_URL (the audience your identity provider puts in tokens for this server)');
    return { kind: 'jwks', url: e.AUTH_JWKS_URL, ...claims };
  }
  if (claims.issuer !== undefined || claims.audience !== undefined) {
    problems.push(`${claims.issuer !== undefined ? 'AUTH_JWT_ISSUER' : 'AUTH_JWT_AUDIENCE'}: only used with AUTH_JWT_SECRET or AUTH_JWKS_URL, which is not set`);
  }
  return undefined;
}

/** API keys from their file: `<id> <key>` per line; only the keys' sha256 is kept. */
function apiKeysFrom(file: string, cwd: string, readFile: ReadSecretFile, problems: string[]): ApiKeyRecord[] {
  let contents: string;
  try {
    contents = readFile(path.resolve(cwd, file));
  } catch (error) {
    problems.push(`AUTH_API_KEYS_FILE: cannot read ${file}: ${(error as Error).message}`);
    return [];
  }
  const keys: ApiKeyRecord[] = [];
  const before = problems.length;
  for (const [index, raw] of contents.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z0-9._-]{1,64})\s+(\S{32,})$/.exec(line);
    // Never echo the line: it holds a key.
    if (!match?.[1] || !match[2]) {
      problems.push(`AUTH_API_KEYS_FILE: line ${index + 1} of ${file} is not "<id> <key>" (an id of letters, digits and ._-, a key of 32+ characters)`);
      continue;
    }
    if (keys.some((key) => key.id === match[1])) problems.push(`AUTH_API_KEYS_FILE: id ${match[1]} appears twice in ${file}`);
    keys.push({ id: match[1], sha256: createHash('sha256').update(match[2]).digest('hex') });
  }
  if (keys.length === 0 && problems.length === before) problems.push(`AUTH_API_KEYS_FILE: ${file} holds no key`);
  return keys;
}

function storageConfig(
  e: Defaults<z.output<typeof envSchema>>,
  directory: string,
  cwd: string,
  readFile: ReadSecretFile,
  problems: string[],
): Config['storage'] {
  if (e.STORAGE === 'file') return { kind: 'file', directory };
  if (!e.S3_BUCKET) problems.push('S3_BUCKET: required when STORAGE=s3');
  const accessKeyId = secret(e, 'S3_ACCESS_KEY_ID', cwd, readFile, problems);
  const secretAccessKey = secret(e, 'S3_SECRET_ACCESS_KEY', cwd, readFile, problems);
  const keyGiven = e.S3_ACCESS_KEY_ID !== undefined || e.S3_ACCESS_KEY_ID_FILE !== undefined;
  const secretGiven = e.S3_SECRET_ACCESS_KEY !== undefined || e.S3_SECRET_ACCESS_KEY_FILE !== undefined;
  if (keyGiven && !secretGiven) problems.push('S3_SECRET_ACCESS_KEY: required when S3_ACCESS_KEY_ID is set (or use the _FILE variants)');
  if (secretGiven && !keyGiven) problems.push('S3_ACCESS_KEY_ID: required when S3_SECRET_ACCESS_KEY is set (or use the _FILE variants)');
  return {
    kind: 's3',
    bucket: e.S3_BUCKET ?? '',
    endpoint: e.S3_ENDPOINT,
    region: e.S3_REGION,
    credentials: accessKeyId !== undefined && secretAccessKey !== undefined ? { accessKeyId, secretAccessKey } : undefined,
    forcePathStyle: e.S3_FORCE_PATH_STYLE,
    partSize: e.S3_PART_SIZE,
    prefix: e.S3_PREFIX ?? '',
    connectTimeoutMs: e.S3_CONNECT_TIMEOUT,
    requestTimeoutMs: e.S3_REQUEST_TIMEOUT,
    directory,
    tempDirectory: path.join(directory, '.s3-parts'),
  };
}
