import fs from 'node:fs/promises';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { Env } from '../config.js';
import type { HookEvent, HookHandlers } from '../hooks/types.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { OFFSET_STREAM, TUS } from '../testing/http-test-helpers.js';

/**
 * What hooks receive about the request: never a credential (Authorization, Cookie,
 * Proxy-Authorization, X-Api-Key, an access_token in the query), and the verified subject
 * instead. Nor does the durable queue keep a credential on disk.
 */

const SECRET = 'a-secret-of-at-least-32-characters!!';
const CREDENTIALS = {
  Cookie: 'session=cookie-secret',
  'Proxy-Authorization': 'Basic cHJveHktc2VjcmV0',
  'X-Api-Key': 'api-key-secret',
};
const apps: TestApp[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((t) => t.cleanup()));
});

/** An app whose every hook records its event. */
async function recordingApp(env: Env): Promise<{ t: TestApp; events: HookEvent[] }> {
  const events: HookEvent[] = [];
  const record = (event: HookEvent) => {
    events.push(event);
  };
  const hooks: HookHandlers = { 'pre-create': record, 'post-create': record, 'pre-finish': record, 'post-finish': record, 'pre-terminate': record, 'post-terminate': record };
  const t = await createTestApp(env, { hooks });
  apps.push(t);
  await t.startBackground();
  return { t, events };
}

/** Creates, finishes and deletes an upload, each request with `auth` and the other credentials, the creation with ?access_token= in its URL. */
async function fullLifecycle(t: TestApp, auth: string): Promise<void> {
  const headers = { ...TUS, ...CREDENTIALS, Authorization: auth };
  const created = await t.app.request('http://localhost/files?access_token=query-secret&keep=1', { method: 'POST', headers: { ...headers, 'Upload-Length': '5' } });
  expect(created.status).toBe(201);
  const uploadPath = new URL(created.headers.get('location')!, 'http://localhost').pathname;
  // (@tus/server reads a query string on PATCH as part of the id: only the POST carries one.)
  const patched = await t.app.request(uploadPath, {
    method: 'PATCH',
    headers: { ...headers, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '5' },
    body: 'hello',
  });
  expect(patched.status).toBe(204);
  expect((await t.app.request(uploadPath, { method: 'DELETE', headers })).status).toBe(204);
  await t.state.queue.idle();
}

function expectNoCredentials(events: HookEvent[], auth: string, { tus = true } = {}): void {
  const requests = events.map((event) => event.request).filter((request) => request !== null);
  expect(requests.length).toBeGreaterThanOrEqual(tus ? 6 : 3);
  for (const request of requests) {
    const names = Object.keys(request.headers);
    for (const name of ['authorization', 'cookie', 'proxy-authorization', 'x-api-key']) expect(names).not.toContain(name);
    expect(request.uri).not.toContain('access_token');
    const text = JSON.stringify(request);
    for (const secret of ['cookie-secret', 'cHJveHktc2VjcmV0', 'api-key-secret', 'query-secret', auth.split(' ')[1]!]) expect(text).not.toContain(secret);
    // What is not a credential stays.
    if (tus) expect(request.headers['tus-resumable']).toBe('1.0.0');
  }
  if (tus) expect(requests.find((r) => r.method === 'POST')?.uri).toBe('/files?keep=1');
}

async function queueFiles(t: TestApp): Promise<string> {
  const dir = path.join(t.storageDir, '.queue', 'journal');
  const names = await fs.readdir(dir).catch(() => []);
  return (await Promise.all(names.map((name) => fs.readFile(path.join(dir, name), 'utf8')))).join('\n');
}

describe('hook payloads', () => {
  it('authentication off: no credential reaches a hook or the queue on disk; subject is null', async () => {
    const { t, events } = await recordingApp({});
    await fullLifecycle(t, 'Bearer unverified-bearer-secret');
    expectNoCredentials(events, 'Bearer unverified-bearer-secret');
    for (const event of events) expect(event.request?.subject).toBeNull();
    const journal = await queueFiles(t);
    // The notifying hooks' jobs are there, with their request, only without credentials.
    expect(journal).toContain('post-create');
    expect(journal).toContain('tus-resumable');
    for (const secret of ['unverified-bearer-secret', 'cookie-secret', 'query-secret', 'api-key-secret']) expect(journal).not.toContain(secret);
  });

  it('authentication on: hooks get the verified subject, never the token', async () => {
    const { t, events } = await recordingApp({ AUTH_JWT_SECRET: SECRET });
    const token = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
    await fullLifecycle(t, `Bearer ${token}`);
    expectNoCredentials(events, `Bearer ${token}`);
    for (const event of events) expect(event.request?.subject).toMatch(/alice/);
    expect(await queueFiles(t)).not.toContain(token);
  });

  it('the IETF protocol too: the verified subject, no credential', async () => {
    const { t, events } = await recordingApp({ AUTH_JWT_SECRET: SECRET });
    const token = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
    const created = await t.app.request('http://localhost/files', {
      method: 'POST',
      headers: { ...CREDENTIALS, Authorization: `Bearer ${token}`, 'Upload-Draft-Interop-Version': '8', 'Upload-Complete': '?1', 'Content-Length': '5' },
      body: 'hello',
    });
    expect(created.status).toBe(201);
    await t.state.queue.idle();
    expect(events.map((event) => event.type)).toEqual(expect.arrayContaining(['pre-create', 'post-create', 'pre-finish', 'post-finish']));
    expectNoCredentials(events, `Bearer ${token}`, { tus: false });
    for (const event of events) expect(event.request?.subject).toMatch(/bob/);
  });
});
