import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord } from '../config.js';

/**
 * The id of the API key a request presents, or undefined. Keys are kept as their sha256
 * (config.ts hashes them as it reads the file), and every record is compared in constant
 * time, so neither timing nor memory gives a key away.
 */
export function apiKeyId(keys: readonly ApiKeyRecord[], presented: string): string | undefined {
  const digest = createHash('sha256').update(presented).digest();
  let found: string | undefined;
  for (const key of keys) {
    // No early exit: every key is compared, whichever matches.
    if (timingSafeEqual(digest, Buffer.from(key.sha256, 'hex'))) found ??= key.id;
  }
  return found;
}
