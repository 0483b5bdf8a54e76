import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a receiver should trust a delivery's timestamp; older ones may be replays. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * HMAC-SHA256 over `${timestamp}.${body}`, hex: the `Hook-Signature: sha256=<hex>` header.
 * Signing the timestamp with the body lets a receiver reject replays of old deliveries.
 */
export function signHookBody(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * What a hook receiver does with our headers: recompute the signature in constant time and
 * refuse timestamps outside the tolerance window. Exported for receivers written in Node.
 */
export function verifyHookSignature(
  secret: string,
  { body, signature, timestamp }: { body: string; signature: string | null | undefined; timestamp: string | null | undefined },
  { now = Date.now(), toleranceSeconds = DEFAULT_TOLERANCE_SECONDS }: { now?: number; toleranceSeconds?: number } = {},
): boolean {
  if (!signature || !timestamp || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const expected = Buffer.from(signHookBody(secret, Number(timestamp), body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
