import { isIP } from 'node:net';
import type { Config } from '../config.js';

/** Whether a listening host is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/**
 * What an operator should hear at startup about settings that are valid but risky: an open
 * server on a public address, signed links that work on one instance only.
 */
export function startupWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (!config.auth && !isLoopbackHost(config.server.host)) {
    warnings.push(
      `no authentication (AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_API_KEYS_FILE) while listening on ${config.server.host}: anyone who reaches this address can upload, read and delete uploads`,
    );
  }
  if (config.auth && config.auth.signedUrlSecret === undefined && config.auth.jwt?.kind !== 'secret' && config.redis) {
    warnings.push('SIGNED_URL_SECRET is not set: signed download links are signed with a per-process key and work only on the instance that made them');
  }
  return warnings;
}
