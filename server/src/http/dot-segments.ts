import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from './app-env.js';

/**
 * The path of the request target exactly as the client sent it, when served over a socket:
 * @hono/node-server builds the Request's URL with WHATWG URL parsing, which resolves dot
 * segments (`/files/%2e%2e` becomes `/`), so routing never sees them. Under app.request()
 * there is no raw target: the caller's own URL parsing already resolved the path it names.
 */
export function rawRequestPath(c: Context<AppEnv>): string | undefined {
  const target = c.env?.incoming?.url;
  if (typeof target !== 'string') return undefined;
  // Absolute form (`GET http://host/path HTTP/1.1`): the path starts after the authority.
  const absolute = /^https?:\/\/[^/?#]*/i.exec(target);
  const path = absolute ? target.slice(absolute[0].length) : target;
  const end = path.search(/[?#]/);
  return end === -1 ? path : path.slice(0, end);
}

/**
 * "." and ".." as URL parsing reads them: also percent-encoded, in any case (`%2e`, `.%2E`).
 * Backslashes separate segments too for http(s) URLs.
 */
export function hasDotSegment(path: string): boolean {
  // The common case costs one scan: no dot, no escape.
  if (!path.includes('.') && !path.includes('%')) return false;
  return path.split(/[/\\]/).some((segment) => {
    const dots = segment.toLowerCase().replaceAll('%2e', '.');
    return dots === '.' || dots === '..';
  });
}

/** Whether `path` (raw, percent-encoded) is `base` or below it, segment by segment once decoded. */
export function isWithinPath(path: string, base: string): boolean {
  const decode = (segment: string) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      return segment;
    }
  };
  const want = base.split('/').filter(Boolean);
  const have = path.split(/[/\\]/).filter(Boolean).map(decode);
  return want.every((segment, i) => have[i] === segment);
}

export type DotSegmentAnswer = (c: Context<AppEnv>, rawPath: string) => Response | Promise<Response>;

/**
 * A request whose raw path has a dot segment would be routed by its resolved path:
 * `HEAD /files/%2e%2e` reached the page at `/`. Such a request names no resource of ours,
 * so it is answered here, before any route, by `answer` (a 404 that suits where it points).
 */
export function rejectDotSegments(answer: DotSegmentAnswer): MiddlewareHandler<AppEnv> {
  return async function dotSegments(c, next) {
    const raw = rawRequestPath(c);
    if (raw !== undefined && hasDotSegment(raw)) return answer(c, raw);
    await next();
  };
}
