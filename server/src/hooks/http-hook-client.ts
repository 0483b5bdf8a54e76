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

/**
 * One signed POST of a hook event to HOOKS_URL. Headers: `Hook-Type`, `Hook-Delivery-Id`,
 * `Hook-Timestamp` (unix seconds) and `Hook-Signature: sha256=<hmac>`.
 */
export async function postHook(config: HttpHookConfig, event: HookEvent, delivery: { id?: string; attempt?: number } = {}): Promise<HookReply> {
  const timestamp = Math.floor(Date.now() / 1000);
  const payload: HookPayload = { ...event, deliveryId: delivery.id ?? randomUUID(), attempt: delivery.attempt ?? 1, sentAt: new Date().toISOString() };
  const body = JSON.stringify(payload);
  let response: Response;
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
  } catch (error) {
    if (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError')) throw new HookTimeoutError(config.timeoutMs);
    throw error;
  }
  const text = (await response.text()).slice(0, MAX_REPLY_BYTES);
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
