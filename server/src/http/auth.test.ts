import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuthConfig } from '../config.js';
import { bearerToken, createAuthenticator } from './auth.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const secretAuth = (extra: Partial<AuthConfig> = {}): AuthConfig => ({ kind: 'secret', secret: SECRET, issuer: undefined, audience: undefined, ...extra }) as AuthConfig;
const hs256 = (claims: Record<string, unknown> = {}, expiresIn = '5m', key = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(key));
const request = (headers: Record<string, string> = {}, url = 'http://localhost/files/') => new Request(url, { headers });

describe('bearerToken', () => {
  it('reads the Authorization header, any case of "Bearer"', () => {
    expect(bearerToken(request({ Authorization: 'Bearer abc.def.ghi' }))).toBe('abc.def.ghi');
    expect(bearerToken(request({ Authorization: 'bearer   abc' }))).toBe('abc');
  });

  it('reads ?access_token= when there is no header (links, EventSource)', () => {
    expect(bearerToken(request({}, 'http://localhost/uploads/x?access_token=tok'))).toBe('tok');
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

  it('accepts a valid token, in the header or the query', async () => {
    const authenticate = createAuthenticator(secretAuth())!;
    const token = await hs256({ sub: 'user-1' });
    expect(await authenticate(request({ Authorization: `Bearer ${token}` }))).toBeUndefined();
    expect(await authenticate(request({}, `http://localhost/uploads/x?access_token=${token}`))).toBeUndefined();
  });

  it('refuses a request without a token: 401 ERR_UNAUTHORIZED with a Bearer challenge', async () => {
    const refused = await createAuthenticator(secretAuth())!(request());
    expect(refused?.status).toBe(401);
    expect(refused?.body).toBe('ERR_UNAUTHORIZED: this server needs a token: send Authorization: Bearer <token>\n');
    expect(refused?.headers['WWW-Authenticate']).toBe('Bearer realm="uploads"');
  });

  it('refuses another scheme with a hint', async () => {
    const refused = await createAuthenticator(secretAuth())!(request({ Authorization: 'Basic dXNlcjpwYXNz' }));
    expect(refused?.body).toBe('ERR_UNAUTHORIZED: expected Authorization: Bearer <token>\n');
  });

  it.each([
    ['an expired token', () => hs256({}, '-1m'), 'the token has expired'],
    ['a token signed with another key', () => hs256({}, '5m', 'another-secret-that-is-long-enough-xxxxxxxx'), 'the token signature does not verify'],
    ['an unsigned token (alg none)', async () => new UnsecuredJWT({ sub: 'x' }).setExpirationTime('5m').encode(), 'the token is signed with an algorithm that is not accepted'],
    ['garbage', async () => 'not-a-jwt', 'the token is not a valid JWT'],
  ])('refuses %s, saying why', async (_what, make, why) => {
    const refused = await createAuthenticator(secretAuth())!(request({ Authorization: `Bearer ${await make()}` }));
    expect(refused?.status).toBe(401);
    expect(refused?.body).toBe(`ERR_UNAUTHORIZED: ${why}\n`);
    expect(refused?.headers['WWW-Authenticate']).toBe(`Bearer realm="uploads", error="invalid_token", error_description="${why}"`);
  });

  it('checks issuer and audience when configured', async () => {
    const authenticate = createAuthenticator(secretAuth({ issuer: 'https://app.example.com', audience: 'uploads' }))!;
    const good = await hs256({ iss: 'https://app.example.com', aud: 'uploads' });
    expect(await authenticate(request({ Authorization: `Bearer ${good}` }))).toBeUndefined();
    const wrongIssuer = await authenticate(request({ Authorization: `Bearer ${await hs256({ iss: 'https://evil.example.com', aud: 'uploads' })}` }));
    expect(wrongIssuer?.body).toBe("ERR_UNAUTHORIZED: the token's iss claim is not accepted\n");
    const noAudience = await authenticate(request({ Authorization: `Bearer ${await hs256({ iss: 'https://app.example.com' })}` }));
    expect(noAudience?.body).toBe("ERR_UNAUTHORIZED: the token's aud claim is not accepted\n");
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
    const sign = () => new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256', kid }).setExpirationTime('5m').sign(privateKey);
    return { jwk, sign };
  }

  it('accepts tokens signed by a published key, fetching the key set once', async () => {
    const key = await signer('k1');
    const jwks = await jwksServer({ current: [key.jwk] });
    const authenticate = createAuthenticator({ kind: 'jwks', url: jwks.url, issuer: undefined, audience: undefined })!;
    expect(await authenticate(request({ Authorization: `Bearer ${await key.sign()}` }))).toBeUndefined();
    expect(await authenticate(request({ Authorization: `Bearer ${await key.sign()}` }))).toBeUndefined();
    expect(jwks.fetches()).toBe(1);
  });

  it('refuses a token from a key that is not published', async () => {
    const published = await signer('k1');
    const stranger = await signer('k9');
    const jwks = await jwksServer({ current: [published.jwk] });
    const refused = await createAuthenticator({ kind: 'jwks', url: jwks.url, issuer: undefined, audience: undefined })!(
      request({ Authorization: `Bearer ${await stranger.sign()}` }),
    );
    expect(refused?.status).toBe(401);
    expect(refused?.body).toBe('ERR_UNAUTHORIZED: no signing key matches the token\n');
  });

  it('answers 503 ERR_AUTH_UNAVAILABLE, not 401, when the key set cannot be fetched', async () => {
    const key = await signer('k1');
    const jwks = await jwksServer({ current: [] });
    const down = jwks.url.replace(/:\d+\//, ':1/');
    const refused = await createAuthenticator({ kind: 'jwks', url: down, issuer: undefined, audience: undefined })!(
      request({ Authorization: `Bearer ${await key.sign()}` }),
    );
    expect(refused?.status).toBe(503);
    expect(refused?.code).toBe('ERR_AUTH_UNAVAILABLE');
    expect(refused?.headers['Retry-After']).toBe('5');
  });
});
