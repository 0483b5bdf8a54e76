import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, encodeMetadata, patchUpload, TUS } from '../testing/http-test-helpers.js';

const SECRET = 'request-log-test-secret-long-enough-0123456789';
const token = (sub: string) => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

/** Log lines, as pino writes them, parsed. */
function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines, requests: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request') };
}

describe('the request log', () => {
  let t: TestApp;
  let log: ReturnType<typeof capture>;
  let bearer: string;

  beforeAll(async () => {
    log = capture();
    t = await createTestApp({ AUTH_JWT_SECRET: SECRET }, { logger: log.logger });
    bearer = await token('alice');
  });
  afterAll(() => t?.cleanup());

  it('carries the subject and the upload id, and no credential, cookie or metadata value', async () => {
    const secretName = 'quarterly-results-confidential.pdf';
    const headers = { Authorization: `Bearer ${bearer}`, Cookie: 'session=cookie-secret-value', 'Upload-Metadata': encodeMetadata({ filename: secretName }) };
    const { path, id } = await createUpload(t.app, { ...headers, 'Upload-Length': '5' });
    expect((await patchUpload(t.app, path, 0, 'hello', { Authorization: `Bearer ${bearer}`, Cookie: 'session=cookie-secret-value' })).status).toBe(204);
    // A token in the query string (which the server no longer reads) is not logged either.
    await t.app.request(`${path}?access_token=query-secret-value`, { method: 'HEAD', headers: { ...TUS, Authorization: `Bearer ${bearer}` } });

    const lines = log.requests();
    const post = lines.find((l) => l.method === 'POST');
    const patch = lines.find((l) => l.method === 'PATCH');
    const head = lines.find((l) => l.method === 'HEAD');
    expect(post).toMatchObject({ subject: 'jwt:alice', uploadId: id, status: 201, path: '/files' });
    expect(patch).toMatchObject({ subject: 'jwt:alice', uploadId: id, status: 204, bytesIn: 5 });
    expect(head).toMatchObject({ subject: 'jwt:alice', uploadId: id, path });
    const all = log.lines.join('\n');
    for (const secret of [bearer, 'cookie-secret-value', 'query-secret-value', 'access_token', secretName, Buffer.from(secretName).toString('base64'), SECRET]) {
      expect(all).not.toContain(secret);
    }
  });

  it('logs no subject when the request was refused, and cuts a long overridden method', async () => {
    const before = log.lines.length;
    const res = await t.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '5', Authorization: 'Bearer not-a-jwt', 'X-HTTP-Method-Override': 'X'.repeat(5000) } });
    expect(res.status).toBeGreaterThanOrEqual(400);
    const line = JSON.parse(log.lines.slice(before).find((l) => l.includes('"msg":"request"')) ?? '{}') as Record<string, unknown>;
    expect(line.subject).toBeUndefined();
    expect(String(line.override).length).toBeLessThanOrEqual(201);
    expect(log.lines.slice(before).join('\n')).not.toContain('not-a-jwt');
  });
});
