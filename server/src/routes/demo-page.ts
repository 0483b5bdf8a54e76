import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Hono, type Context } from 'hono';
import type { AppEnv } from '../http/app-env.js';

/**
 * The browser demo (client-demo/public): `GET /` is its page, `GET /demo/<asset>` a fixed list
 * of files, read once when the routes are made. Nothing else on disk is reachable: a name is
 * looked up in the list, never joined to a path.
 */

/** The page's own files, relative to the repository (and to /app in the image). */
const PUBLIC_DIR = 'client-demo/public';
const REPO_ROOT = new URL('../../../', import.meta.url);

/** Where each served file comes from: a file of the page, or the tus-js-client browser bundle. */
type Source = Readonly<{ file: string } | { package: string }>;

/** Every asset `/demo/<name>` serves, and its type. */
const ASSETS = {
  'app.js': { source: { file: 'app.js' }, type: 'text/javascript; charset=utf-8' },
  'format.js': { source: { file: 'format.js' }, type: 'text/javascript; charset=utf-8' },
  'styles.css': { source: { file: 'styles.css' }, type: 'text/css; charset=utf-8' },
  'tus.min.js': { source: { package: 'tus-js-client/dist/tus.min.js' }, type: 'text/javascript; charset=utf-8' },
} as const satisfies Record<string, { source: Source; type: string }>;

export type DemoAssetName = keyof typeof ASSETS;

/** The placeholder in index.html that becomes the tus endpoint. */
const ENDPOINT_PLACEHOLDER = '__TUS_ENDPOINT__';

/**
 * What the page needs and nothing more: its own scripts and styles, requests to this server
 * (tus, the status resource), and the empty `data:` favicon. No inline code, no other origin.
 */
export const DEMO_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The repository files the demo serves, for the image checks (docker-files.test.ts). */
export const DEMO_FILES: readonly string[] = [
  `${PUBLIC_DIR}/index.html`,
  ...Object.values(ASSETS).flatMap(({ source }) => ('file' in source ? [`${PUBLIC_DIR}/${source.file}`] : [])),
];

/** The npm packages whose files the demo serves: they must be production dependencies. */
export const DEMO_PACKAGES: readonly string[] = [
  ...new Set(Object.values(ASSETS).flatMap(({ source }) => ('package' in source ? [source.package.split('/')[0] ?? ''] : []))),
];

export type DemoPageOptions = Readonly<{
  /** The tus endpoint's path without its trailing slash, as in Config (`/files`); the page uploads to `${tusPath}/`. */
  tusPath: string;
  /** Directory holding index.html, app.js, format.js and styles.css. @default <repository>/client-demo/public */
  publicDir?: string;
}>;

type Loaded = Readonly<{ body: Uint8Array<ArrayBuffer>; type: string; etag: string }>;

const escapeAttribute = (value: string) =>
  value.replace(/[&"'<>]/g, (char) => ({ '&': '&amp;', '"': '&quot;', "'": '&#39;', '<': '&lt;', '>': '&gt;' })[char] ?? char);

function load(bytes: Uint8Array, type: string): Loaded {
  const body = new Uint8Array(bytes);
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

function readOrExplain(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new Error(`the browser demo cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** `GET /` and `GET /demo/<asset>`; throws at once if a file of the page is missing. */
export function demoPageRoutes({ tusPath, publicDir = fileURLToPath(new URL(`${PUBLIC_DIR}/`, REPO_ROOT)) }: DemoPageOptions): Hono<AppEnv> {
  const require = createRequire(import.meta.url);
  const fromPublic = (name: string) => `${publicDir.replace(/\/$/, '')}/${name}`;

  const template = readOrExplain(fromPublic('index.html')).toString('utf8');
  if (!template.includes(ENDPOINT_PLACEHOLDER)) throw new Error(`the browser demo's index.html has no ${ENDPOINT_PLACEHOLDER} placeholder`);
  const page = load(Buffer.from(template.replaceAll(ENDPOINT_PLACEHOLDER, escapeAttribute(`${tusPath}/`)), 'utf8'), 'text/html; charset=utf-8');

  const assets = new Map<string, Loaded>();
  for (const [name, { source, type }] of Object.entries(ASSETS) as [DemoAssetName, (typeof ASSETS)[DemoAssetName]][]) {
    const file = 'file' in source ? fromPublic(source.file) : require.resolve(source.package);
    assets.set(name, load(readOrExplain(file), type));
  }

  function serve(c: Context<AppEnv>, asset: Loaded): Response {
    const headers = {
      'Content-Type': asset.type,
      // Revalidated on every use (the files change with the server, their names do not), cheaply: ETag.
      'Cache-Control': 'no-cache',
      ETag: asset.etag,
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': DEMO_CSP,
      // Download links are signed (a capability for a while): never send them on to another site.
      'Referrer-Policy': 'no-referrer',
    };
    const known = c.req.header('if-none-match');
    if (known !== undefined && known.split(',').some((tag) => tag.trim().replace(/^W\//, '') === asset.etag)) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(asset.body, { status: 200, headers: { ...headers, 'Content-Length': String(asset.body.byteLength) } });
  }

  const routes = new Hono<AppEnv>();
  routes.get('/', (c) => serve(c, page));
  // One route per name: any other /demo/... path is not matched here and ends in the app's 404.
  for (const [name, asset] of assets) routes.get(`/demo/${name}`, (c) => serve(c, asset));
  return routes;
}
