import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { AuthConfig } from '../config.js';
import { HttpError } from '../errors.js';

/** Checks a request's bearer token: undefined when it may go on, the error to answer otherwise. */
export type Authenticator = (request: Request) => Promise<HttpError | undefined>;

const REALM = 'uploads';

/**
 * The token of a request: `Authorization: Bearer <token>`, or the `access_token` query
 * parameter (RFC 6750 §2.3) for what a browser cannot send headers with: a download link,
 * an EventSource.
 */
export function bearerToken(request: Request): string | undefined {
  const header = request.headers.get('authorization');
  if (header !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match?.[1];
  }
  return new URL(request.url).searchParams.get('access_token') ?? undefined;
}

function unauthorized(message: string, problem?: string): HttpError {
  // RFC 6750 §3: a 401 names the scheme; with a token that failed, also why.
  const challenge = problem ? `Bearer realm="${REALM}", error="invalid_token", error_description="${problem}"` : `Bearer realm="${REALM}"`;
  return new HttpError('ERR_UNAUTHORIZED', message, { 'WWW-Authenticate': challenge });
}

/** Why a token was refused, in words a user can act on; never the token or a stack. */
function describeRejection(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not accepted`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature does not verify';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no signing key matches the token';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm that is not accepted';
  return 'the token is not a valid JWT';
}

/** The signing keys could not be fetched: our problem (503), not the client's token. */
const isKeySourceFailure = (error: unknown) =>
  error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || (error instanceof Error && !(error instanceof errors.JOSEError));

/**
 * A verifier for the configured token kind, or undefined when the server is open.
 * Secret: HS256 only (never "none", never an asymmetric algorithm with the secret as key).
 * JWKS: the keys are fetched on first use, cached, and refetched when a token names an
 * unknown key id (jose's createRemoteJWKSet).
 */
export function createAuthenticator(auth: AuthConfig | undefined): Authenticator | undefined {
  if (!auth) return undefined;
  const key: Uint8Array | JWTVerifyGetKey = auth.kind === 'secret' ? new TextEncoder().encode(auth.secret) : createRemoteJWKSet(new URL(auth.url));
  const options = {
    ...(auth.kind === 'secret' ? { algorithms: ['HS256'] } : {}),
    ...(auth.issuer !== undefined ? { issuer: auth.issuer } : {}),
    ...(auth.audience !== undefined ? { audience: auth.audience } : {}),
  };
  return async (request) => {
    const token = bearerToken(request);
    if (token === undefined) {
      if (request.headers.has('authorization')) return unauthorized('expected Authorization: Bearer <token>');
      return unauthorized('this server needs a token: send Authorization: Bearer <token>');
    }
    try {
      // The two overloads of jwtVerify (key or key getter) need the call split for the types.
      if (key instanceof Uint8Array) await jwtVerify(token, key, options);
      else await jwtVerify(token, key, options);
      return undefined;
    } catch (error) {
      if (auth.kind === 'jwks' && isKeySourceFailure(error)) {
        return new HttpError('ERR_AUTH_UNAVAILABLE', 'the keys that sign tokens cannot be fetched right now; try again shortly', { 'Retry-After': '5' });
      }
      const problem = describeRejection(error);
      return unauthorized(problem, problem);
    }
  };
}
