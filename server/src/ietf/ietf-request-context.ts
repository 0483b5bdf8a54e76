import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Context } from 'hono';
import type { HookRequest } from '../hooks/types.js';
import type { AppEnv } from '../http/app-env.js';
import { UploadBody } from '../http/upload-body.js';
import type { Actor } from '../uploads/actor.js';
import type { IetfDeps } from './ietf-deps.js';
import type { IetfExchange } from './ietf-responses.js';

/** One IETF request, once its version is known and its sender authenticated. */
export type IetfRequest = Readonly<{
  c: Context<AppEnv>;
  raw: Request;
  exchange: IetfExchange;
  actor: Actor | undefined;
  /** The request as hooks see it. */
  hook: HookRequest;
}>;

/** The Node request when served over a socket; a web stream under app.request() in tests. */
function bodySource(c: Context<AppEnv>): Readable {
  if (c.env?.incoming) return c.env.incoming as Readable;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as NodeReadableStream) : Readable.from([]);
}

/** Whether the request carries content: a Content-Length above 0, or a chunked body. */
export function hasContent(raw: Request, contentLength: number | undefined): boolean {
  if (contentLength !== undefined) return contentLength > 0;
  return raw.headers.has('transfer-encoding') || raw.body !== null;
}

/** The request body, fed as the store reads it, cut (keeping what arrived) as UploadBody knows how. */
export function openBody(deps: IetfDeps, request: IetfRequest, id: string): { body: UploadBody; untrack: () => void } {
  const { idleTimeoutMs, minUploadRate } = deps.config.server;
  const body = new UploadBody(bodySource(request.c), idleTimeoutMs, undefined, minUploadRate);
  const untrack = deps.lifecycle.track(body, id);
  return { body, untrack };
}

/**
 * Runs `action` holding the upload's lock, as a tus PATCH does: a request already writing to
 * the upload is asked to let go (its body is cut, keeping what it stored), and while we hold
 * it a newer request asks us the same: `body` is cut and the store keeps what arrived.
 */
export async function withAppendLock<T>(deps: IetfDeps, request: IetfRequest, id: string, body: UploadBody | undefined, action: () => Promise<T>): Promise<T> {
  const lock = deps.locker.newLock(id);
  // The newer request is the client resuming: to this one, it is as if its client had gone.
  await lock.lock(request.raw.signal, () => body?.cut('client-aborted'));
  try {
    return await action();
  } finally {
    await lock.unlock();
  }
}
