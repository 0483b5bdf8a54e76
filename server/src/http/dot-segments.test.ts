import type { IncomingMessage } from 'node:http';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { AppEnv } from './app-env.js';
import { hasDotSegment, isWithinPath, rejectDotSegments } from './dot-segments.js';

describe('hasDotSegment', () => {
  it.each(['/..', '/.', '/files/..', '/files/.', '/files/../x', '/files/./x', '/files/%2e%2e', '/files/%2E%2E', '/files/%2e%2E/x', '/files/.%2e', '/files/%2e.', '/files/%2e', '/files/x/..', '/files/x/%2e%2e/', '/a\\..\\b'])(
    '%s has one',
    (path) => expect(hasDotSegment(path)).toBe(true),
  );

  it.each(['/', '/files', '/files/', '/files/abc', '/files/...', '/files/.x', '/files/x.', '/files/%2e%2e%2e', '/files/%252e%252e', '/files/..%2f', '/demo/app.js', '/files/a%20b'])(
    '%s has none',
    (path) => expect(hasDotSegment(path)).toBe(false),
  );
});

describe('isWithinPath', () => {
  it.each([
    ['/files', '/files', true],
    ['/files/', '/files', true],
    ['/files/%2e%2e', '/files', true],
    ['/fil%65s/..', '/files', true],
    ['/api/files/x', '/api/files', true],
    ['/filesx/..', '/files', false],
    ['/%2e%2e/files', '/files', false],
    ['/api/..', '/api/files', false],
    ['/%zz/..', '/files', false],
  ])('%s within %s: %s', (path, base, within) => expect(isWithinPath(path, base)).toBe(within));
});

/** An app with the middleware in front of a catch-all route that says which path it got. */
function appWith() {
  const app = new Hono<AppEnv>();
  app.use(rejectDotSegments((_c, rawPath) => new Response(`refused ${rawPath}`, { status: 404 })));
  app.all('*', (c) => c.text(`routed ${c.req.path}`));
  return app;
}

/** The bindings @hono/node-server passes: only the raw target matters here. */
const socketEnv = (url: string) => ({ incoming: { url } as IncomingMessage });

describe('rejectDotSegments', () => {
  it('answers a request whose raw target (the socket request) has a dot segment, before any route', async () => {
    const app = appWith();
    const res = await app.request('http://localhost/', { method: 'HEAD' }, socketEnv('/files/%2e%2e'));
    expect(res.status).toBe(404);
    const get = await app.request('http://localhost/', {}, socketEnv('/files/%2E%2e/x?y=1'));
    expect(await get.text()).toBe('refused /files/%2E%2e/x');
  });

  it('reads the path of an absolute-form target', async () => {
    const res = await appWith().request('http://localhost/', {}, socketEnv('http://localhost:8080/demo/../files'));
    expect(await res.text()).toBe('refused /demo/../files');
  });

  it('lets other socket requests through, dots in names and queries included', async () => {
    const app = appWith();
    for (const target of ['/files/abc', '/demo/app.js', '/files?next=/../x', '/files/...']) {
      const res = await app.request(`http://localhost${target}`, {}, socketEnv(target));
      expect(await res.text(), target).toMatch(/^routed /);
    }
  });

  it('without a socket (app.request) lets the request through: its URL was resolved by the caller', async () => {
    const res = await appWith().request('http://localhost/files/%2e%2e');
    expect(await res.text()).toBe('routed /');
  });
});
