import { randomUUID } from 'node:crypto';
import { signHookBody } from './signature.js';
import type { HookEvent } from './types.js';

export type HttpHookConfig = Readonly<{ url: string; secret: string; timeoutMs: number }>;

/** The hook receiver answered, but not with a 2xx. */
export class HookHttpError extends Error {
  constructor(
    readonly status: number,
    readonly responseBody: string,
  ) {
    super(`hook endpoint answered ${status}`);
    this.name = 'HookHttpError';
  }
}

export class HookTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`hook endpoint did not answer within ${timeoutMs} ms`);
    this.name = 'HookTimeoutError';
  }
}

/** What we POST to HOOKS_URL. `deliveryId` stays the same across retries of one delivery. */
export type HookPayload = HookEvent & Readonly<{ deliveryId: string; attempt: number; sentAt: string }>;

/** The reply, parsed when it is JSON. */
export type HookReply = Readonly<{ status: number; json: unknown }>;

const MAX_REPLY_BYTES = 64 * 1024;

/** The first `limit` bytes of a reply body; the rest is never read (a receiver cannot fill our memory). */
async function readLimited(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/**
 * One signed POST of a hook event to HOOKS_URL. Headers: `Hook-Type`, `Hook-Delivery-Id`,
 * `Hook-Timestamp` (unix seconds) and `Hook-Signature: sha256=<hmac>`.
 */
export async function postHook(config: HttpHookConfig, event: HookEvent, delivery: { id?: string; attempt?: number } = {}): Promise<HookReply> {
  const timestamp = Math.floor(Date.now() / 1000);
  const payload: HookPayload = { ...event, deliveryId: delivery.id ?? randomUUID(), attempt: delivery.attempt ?? 1, sentAt: new Date().toISOString() };
  const body = JSON.stringify(payload);
  let response: Response;
  let text: string;
  try {
    response = await fetch(config.url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Hook-Type': event.type,
        'Hook-Delivery-Id': payload.deliveryId,
        'Hook-Timestamp': String(timestamp),
        'Hook-Signature': signHookBody(config.secret, timestamp, body),
      },
      body,
      signal: AbortSignal.timeout(config.timeoutMs),
      redirect: 'error',
    });
    // Inside the try: the timeout also covers a receiver that stalls its body.
    text = await readLimited(response, MAX_REPLY_BYTES);
  } catch (error) {
    if (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError')) throw new HookTimeoutError(config.timeoutMs);
    throw error;
  }
  if (!response.ok) throw new HookHttpError(response.status, text);
  let json: unknown = null;
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  return { status: response.status, json };
}
