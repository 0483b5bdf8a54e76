import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { AuthConfig, JwtAuthConfig } from '../config.js';
import { HttpError } from '../errors.js';
import type { Actor } from '../uploads/actor.js';
import { apiKeyId } from './api-keys.js';
import type { UrlSigner } from './signed-urls.js';

/** What authentication decided: who makes the request, or the error to answer. */
export type AuthOutcome = Readonly<{ actor: Actor; refused?: undefined }> | Readonly<{ refused: HttpError; actor?: undefined }>;

/** Checks a request's credentials (a JWT, an API key, or a signed link). */
export type Authenticator = (request: Request) => Promise<AuthOutcome>;

const REALM = 'uploads';

/** Subjects by kind of credential, so a JWT's `sub` can never pass for an API key's id. */
export const jwtSubject = (sub: string) => `jwt:${sub}`;
export const apiKeySubject = (id: string) => `api-key:${id}`;

/** The bearer credential of a request: `Authorization: Bearer <token>` (RFC 6750 §2.1); never read from the URL. */
export function bearerToken(request: Request): string | undefined {
  const header = request.headers.get('authorization');
  if (header === null) return undefined;
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

function unauthorized(message: string, problem?: string): HttpError {
  // RFC 6750 §3: a 401 names the scheme; with a token that failed, also why.
  const challenge = problem ? `Bearer realm="${REALM}", error="invalid_token", error_description="${problem}"` : `Bearer realm="${REALM}"`;
  return new HttpError('ERR_UNAUTHORIZED', message, { 'WWW-Authenticate': challenge });
}

/** Why a token was refused, in words a user can act on; never the token or a stack. */
function describeRejection(error: unknown): string {
  if (error instanceof errors.JWTExpired) return error.claim === 'iat' ? 'the token is older than this server accepts' : 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    return error.reason === 'missing' ? `the token has no ${error.claim} claim` : `the token's ${error.claim} claim is not accepted`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature does not verify';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no signing key matches the token';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm that is not accepted';
  return 'the token is not a valid JWT';
}

/** The signing keys could not be fetched: our problem (503), not the client's token. */
const isKeySourceFailure = (error: unknown) =>
  error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || (error instanceof Error && !(error instanceof errors.JOSEError));

/** The scopes a token grants: OAuth's space-separated `scope`, or an `scp` list. */
function scopesOf(payload: JWTPayload): string[] {
  if (typeof payload.scope === 'string') return payload.scope.split(' ');
  if (Array.isArray(payload.scp)) return payload.scp.filter((scope): scope is string => typeof scope === 'string');
  if (typeof payload.scp === 'string') return payload.scp.split(' ');
  return [];
}

type JwtVerifier = (token: string) => Promise<JWTPayload>;

/**
 * Secret: HS256 only (never "none", never an asymmetric algorithm with the secret as key).
 * JWKS: the keys are fetched on first use, cached, and refetched when a token names an
 * unknown key id (jose's createRemoteJWKSet). Every token must carry `exp` and `sub`; with
 * AUTH_MAX_TOKEN_AGE also `iat`.
 */
function jwtVerifier(jwt: JwtAuthConfig, jwksCooldownMs: number): JwtVerifier {
  const options: JWTVerifyOptions = {
    requiredClaims: ['exp', 'sub'],
    ...(jwt.kind === 'secret' ? { algorithms: ['HS256'] } : {}),
    ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
    ...(jwt.maxTokenAgeMs !== undefined ? { maxTokenAge: Math.floor(jwt.maxTokenAgeMs / 1000) } : {}),
  };
  if (jwt.kind === 'secret') {
    const key = new TextEncoder().encode(jwt.secret);
    return async (token) => (await jwtVerify(token, key, options)).payload;
  }
  // A token naming an unknown key id refetches the set (a rotation), at most once per cooldown.
  const keys: JWTVerifyGetKey = createRemoteJWKSet(new URL(jwt.url), { cooldownDuration: jwksCooldownMs });
  return async (token) => (await jwtVerify(token, keys, options)).payload;
}

/** A JWT has three base64url parts; anything else presented as a bearer credential is an API key. */
const looksLikeJwt = (token: string) => /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);

/**
 * The authenticator for the configured credentials, or undefined when the server is open.
 * Credentials: `Authorization: Bearer <JWT>`, an API key (`Authorization: Bearer <key>` or
 * `X-Api-Key: <key>`), or a signed link (`?expires=…&signature=…`, GET only) that grants
 * exactly the resource it names.
 */
export function createAuthenticator(auth: AuthConfig | undefined, signer?: UrlSigner, { jwksCooldownMs = 30_000 } = {}): Authenticator | undefined {
  if (!auth) return undefined;
  const verifyJwt = auth.jwt && jwtVerifier(auth.jwt, jwksCooldownMs);
  const refuse = (refused: HttpError): AuthOutcome => ({ refused });
  const keyActor = (key: string): AuthOutcome => {
    const id = apiKeyId(auth.apiKeys, key);
    return id === undefined ? refuse(unauthorized('the API key is not valid', 'the API key is not valid')) : { actor: { subject: apiKeySubject(id), admin: false } };
  };

  return async (request) => {
    const link = signer?.verify(request) ?? 'absent';
    // The signature covers the path: the link grants that resource, whoever created the upload.
    if (link === 'valid') return { actor: { subject: 'signed-link', admin: true } };
    if (link !== 'absent') return refuse(unauthorized(`the link ${link === 'expired' ? 'has expired' : 'is not valid'}; ask the status resource for a new one`));

    const apiKey = request.headers.get('x-api-key');
    if (apiKey !== null && auth.apiKeys.length > 0) return keyActor(apiKey.trim());
    const token = bearerToken(request);
    if (token === undefined) {
      if (request.headers.has('authorization')) return refuse(unauthorized('expected Authorization: Bearer <token>'));
      return refuse(unauthorized('this server needs a token: send Authorization: Bearer <token>'));
    }
    if (!verifyJwt || (!looksLikeJwt(token) && auth.apiKeys.length > 0)) return keyActor(token);
    try {
      const payload = await verifyJwt(token);
      const admin = auth.adminScope !== undefined && scopesOf(payload).includes(auth.adminScope);
      return { actor: { subject: jwtSubject(String(payload.sub)), admin } };
    } catch (error) {
      if (auth.jwt?.kind === 'jwks' && isKeySourceFailure(error)) {
        return refuse(new HttpError('ERR_AUTH_UNAVAILABLE', 'the keys that sign tokens cannot be fetched right now; try again shortly', { 'Retry-After': '5' }));
      }
      const problem = describeRejection(error);
      return refuse(unauthorized(problem, problem));
    }
  };
}
