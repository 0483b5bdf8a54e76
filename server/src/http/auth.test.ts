import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuthConfig, JwtAuthConfig } from '../config.js';
import { bearerToken, createAuthenticator, type Authenticator } from './auth.js';
import { createUrlSigner } from './signed-urls.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const API_KEY = 'k'.repeat(40);
const auth = (jwt: JwtAuthConfig | undefined, extra: Partial<AuthConfig> = {}): AuthConfig => ({
  jwt,
  apiKeys: [],
  adminScope: undefined,
  signedUrlSecret: undefined,
  signedUrlTtlMs: 60_000,
  ...extra,
});
const secretJwt = (extra: Partial<JwtAuthConfig> = {}): JwtAuthConfig => ({ kind: 'secret', secret: SECRET, issuer: undefined, audience: undefined, maxTokenAgeMs: undefined, ...extra }) as JwtAuthConfig;
const secretAuth = (jwt: Partial<JwtAuthConfig> = {}, extra: Partial<AuthConfig> = {}) => auth(secretJwt(jwt), extra);
const hs256 = (claims: Record<string, unknown> = { sub: 'user-1' }, expiresIn: string | null = '5m', key = SECRET) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  return (expiresIn === null ? jwt : jwt.setExpirationTime(expiresIn)).sign(new TextEncoder().encode(key));
};
const request = (headers: Record<string, string> = {}, url = 'http://localhost/files/', method = 'GET') => new Request(url, { headers, method });
const bearer = async (token: string | Promise<string>) => request({ Authorization: `Bearer ${await token}` });

async function actorOf(authenticate: Authenticator, req: Request) {
  const outcome = await authenticate(req);
  expect(outcome.refused?.body).toBeUndefined();
  return outcome.actor;
}

async function refusalOf(authenticate: Authenticator, req: Request) {
  const outcome = await authenticate(req);
  expect(outcome.actor).toBeUndefined();
  return outcome.refused;
}

describe('bearerToken', () => {
  it('reads the Authorization header, any case of "Bearer"', () => {
    expect(bearerToken(request({ Authorization: 'Bearer abc.def.ghi' }))).toBe('abc.def.ghi');
    expect(bearerToken(request({ Authorization: 'bearer   abc' }))).toBe('abc');
  });

  it('never reads a token from the URL: a link outlives the request in history and logs', () => {
    expect(bearerToken(request({}, 'http://localhost/uploads/x?access_token=tok'))).toBeUndefined();
  });

  it('gives nothing for other schemes or an empty header', () => {
    expect(bearerToken(request({ Authorization: 'Basic dXNlcjpwYXNz' }))).toBeUndefined();
    expect(bearerToken(request({ Authorization: 'Bearer' }))).toBeUndefined();
    expect(bearerToken(request())).toBeUndefined();
  });
});

describe('createAuthenticator with a shared secret (HS256)', () => {
  it('is undefined when no auth is configured: the server is open', () => {
    expect(createAuthenticator(undefined)).toBeUndefined();
  });

  it("accepts a valid token and names its subject (the sub claim, as jwt:<sub>)", async () => {
    const authenticate = createAuthenticator(secretAuth())!;
    expect(await actorOf(authenticate, await bearer(hs256({ sub: 'user-1' })))).toEqual({ subject: 'jwt:user-1', admin: false });
    // ?access_token= is no credential any more.
    expect((await refusalOf(authenticate, request({}, `http://localhost/uploads/x?access_token=${await hs256()}`)))?.status).toBe(401);
  });

  it('refuses a request without a token: 401 ERR_UNAUTHORIZED with a Bearer challenge', async () => {
    const refused = await refusalOf(createAuthenticator(secretAuth())!, request());
    expect(refused?.status).toBe(401);
    expect(refused?.body).toBe('ERR_UNAUTHORIZED: this server needs a token: send Authorization: Bearer <token>\n');
    expect(refused?.headers['WWW-Authenticate']).toBe('Bearer realm="uploads"');
  });

  it('refuses another scheme with a hint', async () => {
    const refused = await refusalOf(createAuthenticator(secretAuth())!, request({ Authorization: 'Basic dXNlcjpwYXNz' }));
    expect(refused?.body).toBe('ERR_UNAUTHORIZED: expected Authorization: Bearer <token>\n');
  });

  it.each([
    ['an expired token', () => hs256({ sub: 'u' }, '-1m'), 'the token has expired'],
    ['a token without exp (it would be valid forever)', () => hs256({ sub: 'u' }, null), 'the token has no exp claim'],
    ['a token without sub (nobody to own its uploads)', () => hs256({}, '5m'), 'the token has no sub claim'],
    ['a token signed with another key', () => hs256({ sub: 'u' }, '5m', 'another-secret-that-is-long-enough-xxxxxxxx'), 'the token signature does not verify'],
    ['an unsigned token (alg none)', async () => new UnsecuredJWT({ sub: 'x' }).setExpirationTime('5m').encode(), 'the token is signed with an algorithm that is not accepted'],
    ['garbage', async () => 'not-a-jwt', 'the token is not a valid JWT'],
  ])('refuses %s, saying why', async (_what, make, why) => {
    const refused = await refusalOf(createAuthenticator(secretAuth())!, await bearer(make()));
    expect(refused?.status).toBe(401);
    expect(refused?.body).toBe(`ERR_UNAUTHORIZED: ${why}\n`);
    expect(refused?.headers['WWW-Authenticate']).toBe(`Bearer realm="uploads", error="invalid_token", error_description="${why}"`);
  });

  it('checks issuer and audience when configured', async () => {
    const authenticate = createAuthenticator(secretAuth({ issuer: 'https://app.example.com', audience: 'uploads' }))!;
    expect(await actorOf(authenticate, await bearer(hs256({ sub: 'u', iss: 'https://app.example.com', aud: 'uploads' })))).toBeDefined();
    const wrongIssuer = await refusalOf(authenticate, await bearer(hs256({ sub: 'u', iss: 'https://evil.example.com', aud: 'uploads' })));
    expect(wrongIssuer?.body).toBe("ERR_UNAUTHORIZED: the token's iss claim is not accepted\n");
    const noAudience = await refusalOf(authenticate, await bearer(hs256({ sub: 'u', iss: 'https://app.example.com' })));
    expect(noAudience?.body).toBe('ERR_UNAUTHORIZED: the token has no aud claim\n');
  });

  it('refuses a token older than AUTH_MAX_TOKEN_AGE, and one without iat when a maximum age is set', async () => {
    const authenticate = createAuthenticator(secretAuth({ maxTokenAgeMs: 60_000 }))!;
    expect(await actorOf(authenticate, await bearer(hs256()))).toBeDefined();
    const old = new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(Math.floor(Date.now() / 1000) - 600).setExpirationTime('5m');
    expect((await refusalOf(authenticate, await bearer(old.sign(new TextEncoder().encode(SECRET)))))?.body).toBe('ERR_UNAUTHORIZED: the token is older than this server accepts\n');
    const noIat = new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m');
    expect((await refusalOf(authenticate, await bearer(noIat.sign(new TextEncoder().encode(SECRET)))))?.body).toBe('ERR_UNAUTHORIZED: the token has no iat claim\n');
  });

  it('makes an admin of a token whose scope (or scp) holds AUTH_ADMIN_SCOPE', async () => {
    const authenticate = createAuthenticator(secretAuth({}, { adminScope: 'uploads:admin' }))!;
    expect(await actorOf(authenticate, await bearer(hs256({ sub: 'a', scope: 'read uploads:admin' })))).toEqual({ subject: 'jwt:a', admin: true });
    expect(await actorOf(authenticate, await bearer(hs256({ sub: 'b', scp: ['uploads:admin'] })))).toEqual({ subject: 'jwt:b', admin: true });
    expect(await actorOf(authenticate, await bearer(hs256({ sub: 'c', scope: 'uploads:administrator' })))).toEqual({ subject: 'jwt:c', admin: false });
  });
});

describe('API keys', () => {
  const keys = [{ id: 'backend', sha256: createHash('sha256').update(API_KEY).digest('hex') }];

  it('accepts a key as a bearer credential or in X-Api-Key, as api-key:<id>', async () => {
    const authenticate = createAuthenticator(auth(undefined, { apiKeys: keys }))!;
    expect(await actorOf(authenticate, request({ Authorization: `Bearer ${API_KEY}` }))).toEqual({ subject: 'api-key:backend', admin: false });
    expect(await actorOf(authenticate, request({ 'X-Api-Key': API_KEY }))).toEqual({ subject: 'api-key:backend', admin: false });
  });

  it('refuses a wrong key, and keeps JWTs working beside keys', async () => {
    const authenticate = createAuthenticator(secretAuth({}, { apiKeys: keys }))!;
    expect((await refusalOf(authenticate, request({ 'X-Api-Key': `${API_KEY}x` })))?.body).toBe('ERR_UNAUTHORIZED: the API key is not valid\n');
    expect((await refusalOf(authenticate, request({ Authorization: `Bearer ${'z'.repeat(40)}` })))?.status).toBe(401);
    expect(await actorOf(authenticate, await bearer(hs256({ sub: 'backend' })))).toEqual({ subject: 'jwt:backend', admin: false });
  });
});

describe('signed links', () => {
  const signer = createUrlSigner(Buffer.from('s'.repeat(32)), 60_000);
  const authenticate = createAuthenticator(secretAuth(), signer)!;

  it('grant a GET of exactly the path they name, until they expire', async () => {
    const link = signer.sign('/files/abc');
    expect(await actorOf(authenticate, request({}, `http://localhost${link}`))).toEqual({ subject: 'signed-link', admin: true });
    const expired = signer.sign('/files/abc', Date.now() - 120_000);
    expect((await refusalOf(authenticate, request({}, `http://localhost${expired}`)))?.body).toMatch(/^ERR_UNAUTHORIZED: the link has expired/);
  });

  it('are refused when altered: another path, another expiry, another method', async () => {
    const link = new URL(signer.sign('/files/abc'), 'http://localhost');
    const otherPath = new URL(link);
    otherPath.pathname = '/files/abd';
    const otherExpiry = new URL(link);
    otherExpiry.searchParams.set('expires', String(Number(link.searchParams.get('expires')) + 3600));
    for (const url of [otherPath, otherExpiry]) expect((await refusalOf(authenticate, request({}, url.href)))?.body).toMatch(/the link is not valid/);
    expect((await refusalOf(authenticate, request({}, link.href, 'DELETE')))?.status).toBe(401);
  });
});

describe('createAuthenticator with a JWKS URL', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** A JWKS endpoint on 127.0.0.1 whose key set the test can change, counting fetches. */
  async function jwksServer(keys: { current: JWK[] }): Promise<{ url: string; fetches: () => number }> {
    let fetches = 0;
    const server = http.createServer((_req, res) => {
      fetches += 1;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: keys.current }));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, fetches: () => fetches };
  }

  async function signer(kid: string) {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    const sign = (aud = 'uploads') => new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256', kid }).setAudience(aud).setExpirationTime('5m').sign(privateKey);
    return { jwk, sign };
  }

  const jwksAuth = (url: string) => auth({ kind: 'jwks', url, issuer: undefined, audience: 'uploads', maxTokenAgeMs: undefined });

  it('accepts tokens signed by a published key, fetching the key set once', async () => {
    const key = await signer('k1');
    const jwks = await jwksServer({ current: [key.jwk] });
    const authenticate = createAuthenticator(jwksAuth(jwks.url))!;
    expect(await actorOf(authenticate, await bearer(key.sign()))).toEqual({ subject: 'jwt:u', admin: false });
    expect(await actorOf(authenticate, await bearer(key.sign()))).toBeDefined();
    expect(jwks.fetches()).toBe(1);
  });

  it('refuses a token the identity provider issued for another application (audience)', async () => {
    const key = await signer('k1');
    const jwks = await jwksServer({ current: [key.jwk] });
    const refused = await refusalOf(createAuthenticator(jwksAuth(jwks.url))!, await bearer(key.sign('another-app')));
    expect(refused?.body).toBe("ERR_UNAUTHORIZED: the token's aud claim is not accepted\n");
  });

  it('follows a key rotation: a token from a newly published key is accepted after a refetch', async () => {
    const old = await signer('k1');
    const rotated = await signer('k2');
    const keys = { current: [old.jwk] };
    const jwks = await jwksServer(keys);
    const authenticate = createAuthenticator(jwksAuth(jwks.url), undefined, { jwksCooldownMs: 0 })!;
    expect(await actorOf(authenticate, await bearer(old.sign()))).toBeDefined();
    keys.current = [rotated.jwk];
    expect(await actorOf(authenticate, await bearer(rotated.sign()))).toBeDefined();
    expect(jwks.fetches()).toBe(2);
  });

  it('refuses a token from a key that is not published', async () => {
    const published = await signer('k1');
    const stranger = await signer('k9');
    const jwks = await jwksServer({ current: [published.jwk] });
    const refused = await refusalOf(createAuthenticator(jwksAuth(jwks.url))!, await bearer(stranger.sign()));
    expect(refused?.status).toBe(401);
    expect(refused?.body).toBe('ERR_UNAUTHORIZED: no signing key matches the token\n');
  });

  it('answers 503 ERR_AUTH_UNAVAILABLE, not 401, when the key set cannot be fetched', async () => {
    const key = await signer('k1');
    const jwks = await jwksServer({ current: [] });
    const down = jwks.url.replace(/:\d+\//, ':1/');
    const refused = await refusalOf(createAuthenticator(jwksAuth(down))!, await bearer(key.sign()));
    expect(refused?.status).toBe(503);
    expect(refused?.code).toBe('ERR_AUTH_UNAVAILABLE');
    expect(refused?.headers['Retry-After']).toBe('5');
  });
});
