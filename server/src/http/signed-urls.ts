import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthConfig } from '../config.js';

/**
 * Links that grant one GET (a download, a status stream) for a short time, signed by the
 * server: what a browser opens as a link or an EventSource, which cannot send an
 * Authorization header. The token itself never goes in a URL, where it would outlive the
 * request in browser history and proxy logs.
 */
export type UrlSigner = Readonly<{
  /** `path?expires=<unix seconds>&signature=<base64url>`, valid for the configured time. */
  sign(path: string, now?: number): string;
  /** Whether the request is a GET (or HEAD) of exactly the path a valid, unexpired signature names. */
  verify(request: Request, now?: number): 'valid' | 'expired' | 'invalid' | 'absent';
}>;

/**
 * The signing key: SIGNED_URL_SECRET; else derived from AUTH_JWT_SECRET (every instance
 * sharing that secret shares the key); else random, so links work on this instance only.
 */
export function signingKey(auth: AuthConfig): Buffer {
  if (auth.signedUrlSecret !== undefined) return Buffer.from(auth.signedUrlSecret);
  if (auth.jwt?.kind === 'secret') return createHmac('sha256', auth.jwt.secret).update('tus-server signed links').digest();
  return randomBytes(32);
}

export function createUrlSigner(key: Buffer, ttlMs: number): UrlSigner {
  const mac = (path: string, expires: string) => createHmac('sha256', key).update(`GET\n${path}\n${expires}`).digest();
  return {
    sign(path, now = Date.now()) {
      const expires = String(Math.ceil((now + ttlMs) / 1000));
      return `${path}?expires=${expires}&signature=${mac(path, expires).toString('base64url')}`;
    },
    verify(request, now = Date.now()) {
      const url = new URL(request.url);
      const signature = url.searchParams.get('signature');
      const expires = url.searchParams.get('expires');
      if (signature === null && expires === null) return 'absent';
      if (signature === null || expires === null || !/^\d{1,12}$/.test(expires)) return 'invalid';
      if (request.method !== 'GET' && request.method !== 'HEAD') return 'invalid';
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(url.pathname, expires);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
      return Number(expires) * 1000 < now ? 'expired' : 'valid';
    },
  };
}
