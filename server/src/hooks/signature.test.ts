import { createHmac } from 'node:crypto';
import * as crypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_TOLERANCE_SECONDS, signHookBody, verifyHookSignature } from './signature.js';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof crypto>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const SECRET = 'unit-test-secret-0123456789';
const BODY = JSON.stringify({ type: 'post-finish', deliveryId: 'd-1', upload: { id: 'abc', size: 3, offset: 3 } });
const T = 1_800_000_000; // unix seconds
const NOW = T * 1000;

const verify = (overrides: Partial<{ body: string; signature: string | null | undefined; timestamp: string | null | undefined }> = {}, now = NOW, toleranceSeconds?: number) =>
  verifyHookSignature(SECRET, { body: BODY, signature: signHookBody(SECRET, T, BODY), timestamp: String(T), ...overrides }, { now, ...(toleranceSeconds === undefined ? {} : { toleranceSeconds }) });

afterEach(() => vi.mocked(crypto.timingSafeEqual).mockClear());

describe('signHookBody', () => {
  it('is sha256=<hex HMAC-SHA256 of "timestamp.body">', () => {
    const expected = createHmac('sha256', SECRET).update(`${T}.${BODY}`).digest('hex');
    expect(signHookBody(SECRET, T, BODY)).toBe(`sha256=${expected}`);
    expect(signHookBody(SECRET, T, BODY)).toMatch(/^sha256=[0-9a-f]{64}$/);
  });

  it('changes with the secret, the timestamp and every byte of the body', () => {
    const base = signHookBody(SECRET, T, BODY);
    expect(signHookBody(`${SECRET}x`, T, BODY)).not.toBe(base);
    expect(signHookBody(SECRET, T + 1, BODY)).not.toBe(base);
    expect(signHookBody(SECRET, T, `${BODY} `)).not.toBe(base);
    // The separator matters: "1.23" + "4" must not sign like "1" + ".234".
    expect(signHookBody(SECRET, 12, '3.x')).not.toBe(signHookBody(SECRET, 1, '23.x'));
  });
});

describe('verifyHookSignature', () => {
  it('accepts the genuine signature, body and timestamp', () => {
    expect(verify()).toBe(true);
  });

  it('refuses a tampered body, a wrong secret, or another timestamp under the same signature', () => {
    expect(verify({ body: BODY.replace('"offset":3', '"offset":0') })).toBe(false);
    expect(verify({ body: `${BODY}\n` })).toBe(false);
    expect(verifyHookSignature('another-secret-000000', { body: BODY, signature: signHookBody(SECRET, T, BODY), timestamp: String(T) }, { now: NOW })).toBe(false);
    expect(verify({ timestamp: String(T + 1) }, NOW)).toBe(false);
  });

  it('refuses timestamps outside the tolerance, in either direction, and accepts the edges', () => {
    const at = (timestamp: number) => verify({ timestamp: String(timestamp), signature: signHookBody(SECRET, timestamp, BODY) });
    expect(DEFAULT_TOLERANCE_SECONDS).toBe(300);
    expect(at(T - 300)).toBe(true);
    expect(at(T + 300)).toBe(true);
    expect(at(T - 301)).toBe(false);
    expect(at(T + 301)).toBe(false);
    expect(at(T - 3600)).toBe(false);
    // A custom tolerance.
    expect(verify({}, NOW + 20_000, 10)).toBe(false);
    expect(verify({}, NOW + 5_000, 10)).toBe(true);
  });

  it('defaults "now" to the clock', () => {
    const now = Math.floor(Date.now() / 1000);
    expect(verifyHookSignature(SECRET, { body: BODY, signature: signHookBody(SECRET, now, BODY), timestamp: String(now) })).toBe(true);
    expect(verifyHookSignature(SECRET, { body: BODY, signature: signHookBody(SECRET, now - 600, BODY), timestamp: String(now - 600) })).toBe(false);
  });

  it('refuses missing or malformed headers without throwing', () => {
    for (const signature of [undefined, null, '', 'sha256=', 'sha1=abc', 'garbage', `sha256=${'0'.repeat(64)}`, signHookBody(SECRET, T, BODY).toUpperCase()]) {
      expect(verify({ signature }), String(signature)).toBe(false);
    }
    for (const timestamp of [undefined, null, '', 'now', '-1', '1.5', ' 1800000000', '1800000000 ', '1e9', '1234567890123']) {
      expect(verify({ timestamp }), String(timestamp)).toBe(false);
    }
  });

  it('compares same-length signatures in constant time (timingSafeEqual), wherever they differ', () => {
    const genuine = signHookBody(SECRET, T, BODY);
    const flip = (s: string, i: number) => `${s.slice(0, i)}${s[i] === '0' ? '1' : '0'}${s.slice(i + 1)}`;
    const timingSafeEqual = vi.mocked(crypto.timingSafeEqual);

    expect(verify({ signature: genuine })).toBe(true);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);
    expect(verify({ signature: flip(genuine, 'sha256='.length) })).toBe(false);
    expect(verify({ signature: flip(genuine, genuine.length - 1) })).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(3);
    // A different length is refused before comparing (the length is no secret); no throw.
    expect(verify({ signature: `${genuine}0` })).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(3);
  });
});

describe('the README verification snippet', () => {
  it('agrees with verifyHookSignature', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.split('### Verifying the signature')[1] ?? '';
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    expect(code).toContain('function verify(');
    const body = code.replace(/^import .*$/m, '');
    const actual = await vi.importActual<typeof crypto>('node:crypto');
    const verifySnippet = new Function('createHmac', 'timingSafeEqual', `${body}\nreturn verify;`)(actual.createHmac, actual.timingSafeEqual) as (
      secret: string,
      rawBody: string,
      headers: Record<string, string | undefined>,
    ) => boolean;

    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string, string | undefined][] = [
      [BODY, String(now), signHookBody(SECRET, now, BODY)],
      [`${BODY} `, String(now), signHookBody(SECRET, now, BODY)],
      [BODY, String(now - 1000), signHookBody(SECRET, now - 1000, BODY)],
      [BODY, String(now + 1), signHookBody(SECRET, now, BODY)],
      [BODY, 'abc', signHookBody(SECRET, now, BODY)],
      [BODY, String(now), undefined],
      [BODY, String(now), 'sha256=00'],
    ];
    for (const [body, timestamp, signature] of cases) {
      const expected = verifyHookSignature(SECRET, { body, signature, timestamp });
      expect(verifySnippet(SECRET, body, { 'hook-timestamp': timestamp, 'hook-signature': signature }), `${timestamp} ${signature}`).toBe(expected);
    }
    expect(verifySnippet(SECRET, BODY, { 'hook-timestamp': String(now), 'hook-signature': signHookBody(SECRET, now, BODY) })).toBe(true);
  });
});
