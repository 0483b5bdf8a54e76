import { randomUUID } from 'node:crypto';
import { HttpError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Job, JobQueue } from '../processing/job-queue.js';
import { createKeyedSequence } from '../shared/keyed-sequence.js';
import { withTimeout } from '../shared/with-timeout.js';
import { HookHttpError, HookTimeoutError, postHook, type HttpHookConfig } from './http-hook-client.js';
import type { BlockingHookResult, BlockingHookType, HookEvent, HookHandlers, HookType, NotifyingHookType, PostReceiveResult } from './types.js';

/** Who receives a notifying hook: the embedding program's handler, or HOOKS_URL. */
type Target = 'library' | 'http';

export type HookDelivery = Readonly<{ target: Target; deliveryId: string; event: HookEvent }>;

export type HookDispatcherDeps = Readonly<{
  handlers: HookHandlers;
  http: HttpHookConfig | undefined;
  queue: JobQueue;
  logger: Logger;
  /** A post-receive hook asked to stop this upload. */
  onStopUpload(uploadId: string): Promise<void>;
  /** How long a blocking library handler may take (HOOKS_TIMEOUT; HTTP hooks use their own). */
  blockingTimeoutMs?: number;
  /** Counts calls and failures per hook (tus_hook_invocations_total, tus_hook_errors_total). */
  metrics?: Pick<Metrics, 'hookCalled' | 'hookFailed'>;
}>;

const MAX_MESSAGE = 500;

function clientStatus(status: number | undefined): number {
  return status !== undefined && Number.isInteger(status) && status >= 400 && status <= 499 ? status : 400;
}

function rejection(type: HookType, reject: { status?: number; message: string }): HttpError {
  // Error bodies are one line: a receiver's line breaks and control characters become spaces.
  // eslint-disable-next-line no-control-regex -- control characters are exactly what we replace
  const message = String(reject.message || '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return new HttpError('ERR_UPLOAD_REJECTED', (message || `rejected by the ${type} hook`).slice(0, MAX_MESSAGE), {}, clientStatus(reject.status));
}

/** The reply of a blocking HTTP hook, read defensively: anything unexpected is ignored. */
function parseBlockingReply(json: unknown): BlockingHookResult {
  if (!json || typeof json !== 'object') return {};
  const { reject, metadata } = json as Record<string, unknown>;
  const result: { reject?: { status?: number; message: string }; metadata?: Record<string, string> } = {};
  if (reject && typeof reject === 'object') {
    const { status, message } = reject as Record<string, unknown>;
    result.reject = { status: typeof status === 'number' ? status : undefined, message: typeof message === 'string' ? message : '' };
  }
  // Its keys and values are checked (and a bad one logged) where it is used.
  if (metadata && typeof metadata === 'object' && !Array.isArray(metadata)) result.metadata = metadata as Record<string, string>;
  return result;
}

/** Keys an Upload-Metadata header can carry: printable ASCII without spaces or commas; values are strings. */
function isCarriableMetadata(metadata: Readonly<Record<string, unknown>>): metadata is Readonly<Record<string, string>> {
  return Object.entries(metadata).every(([key, value]) => /^[\x21-\x2b\x2d-\x7e]+$/.test(key) && typeof value === 'string');
}

/** A hook receiver's own 4xx becomes the client's answer, with the receiver's message. */
function messageOf(body: string): string {
  try {
    const json = JSON.parse(body) as Record<string, unknown>;
    for (const key of ['message', 'error']) if (typeof json[key] === 'string') return json[key];
  } catch {
    // not JSON: use the text
  }
  return body.trim();
}

/**
 * Runs blocking hooks in the request path and queues notifying ones. Notifications for one
 * upload are enqueued in the order they happen (a per-upload chain), and each target gets
 * its own queue group, so a failing HOOKS_URL never delays the library handler.
 */
export function createHookDispatcher({ handlers, http, queue, logger, onStopUpload, blockingTimeoutMs = 5_000, metrics }: HookDispatcherDeps) {
  /** Notifications of one upload are queued in the order they happen. */
  const notifications = createKeyedSequence();

  const targetsFor = (type: HookType): Target[] => [...(handlers[type] ? (['library'] as const) : []), ...(http ? (['http'] as const) : [])];

  /** A metadata change stored as is would break HEAD for good: one a header cannot carry is ignored. */
  function usable(type: BlockingHookType, event: HookEvent, metadata: Readonly<Record<string, string>> | undefined) {
    if (metadata === undefined || isCarriableMetadata(metadata)) return metadata;
    logger.warn({ hook: type, uploadId: event.upload.id, keys: Object.keys(metadata).slice(0, 20) }, 'hook returned metadata an Upload-Metadata header cannot carry; ignored');
    return undefined;
  }

  async function runBlocking(type: BlockingHookType, event: HookEvent): Promise<BlockingHookResult> {
    let current = event;
    let metadata: Readonly<Record<string, string>> | undefined;
    const handler = handlers[type] as ((e: HookEvent) => Promise<BlockingHookResult | void> | BlockingHookResult | void) | undefined;
    if (handler) {
      let result: BlockingHookResult | void;
      metrics?.hookCalled(type);
      try {
        result = await withTimeout(Promise.resolve(handler(current)), blockingTimeoutMs, () => new HookTimeoutError(blockingTimeoutMs));
      } catch (error) {
        metrics?.hookFailed(type);
        logger.error({ err: error, hook: type, uploadId: event.upload.id }, 'hook handler failed');
        if (error instanceof HookTimeoutError) throw new HttpError('ERR_HOOK_TIMEOUT', `the ${type} hook did not answer in time; try again later`);
        throw new HttpError('ERR_HOOK_FAILED', `the ${type} hook failed; try again later`, {}, 500);
      }
      if (result?.reject) throw rejection(type, result.reject);
      const changed = usable(type, event, result?.metadata ?? undefined);
      if (changed) {
        metadata = changed;
        current = { ...current, upload: { ...current.upload, metadata } };
      }
    }
    if (http) {
      let reply;
      metrics?.hookCalled(type);
      try {
        // One immediate retry when the connection itself failed (a keep-alive socket the
        // receiver had just closed); a timeout or an HTTP answer is final.
        reply = await postHook(http, current).catch((error: unknown) => {
          if (error instanceof HookHttpError || error instanceof HookTimeoutError) throw error;
          return postHook(http, current);
        });
      } catch (error) {
        if (error instanceof HookHttpError && error.status >= 400 && error.status <= 499) {
          throw rejection(type, { status: error.status, message: messageOf(error.responseBody) || `rejected by the ${type} hook` });
        }
        metrics?.hookFailed(type);
        logger.error({ err: error, hook: type, uploadId: event.upload.id }, 'hook endpoint failed');
        if (error instanceof HookTimeoutError) throw new HttpError('ERR_HOOK_TIMEOUT', `the ${type} hook did not answer in time; try again later`);
        throw new HttpError('ERR_HOOK_FAILED', `the ${type} hook failed; try again later`);
      }
      const result = parseBlockingReply(reply.json);
      if (result.reject) throw rejection(type, result.reject);
      const changed = usable(type, event, result.metadata);
      if (changed) metadata = changed;
    }
    return metadata ? { metadata } : {};
  }

  /**
   * Durably queues a notifying hook for every target. `key` makes it idempotent: the same
   * event (say post-finish of one upload) enqueued twice is delivered once.
   */
  function notify(type: NotifyingHookType, event: HookEvent, key: string): Promise<void> {
    const targets = targetsFor(type);
    if (targets.length === 0) return Promise.resolve();
    const id = event.upload.id;
    return notifications.run(id, async () => {
      for (const target of targets) {
        const delivery: HookDelivery = { target, deliveryId: randomUUID(), event };
        await queue.enqueue({ key: `hook:${target}:${key}`, group: `hook:${target}:${id}`, kind: 'deliver-hook', payload: delivery });
      }
    });
  }

  /** Waits until every notification of this upload so far is durably queued. */
  const flush = (uploadId: string): Promise<void> => notifications.settled(uploadId);

  /** Runs one queued delivery (the queue retries it when this throws); each attempt is counted. */
  async function deliver(job: Job): Promise<void> {
    const { type } = (job.payload as HookDelivery).event;
    metrics?.hookCalled(type);
    try {
      await deliverOnce(job);
    } catch (error) {
      metrics?.hookFailed(type);
      throw error;
    }
  }

  async function deliverOnce(job: Job): Promise<void> {
    const { target, deliveryId, event } = job.payload as HookDelivery;
    let stop: boolean;
    if (target === 'library') {
      const handler = handlers[event.type] as ((e: HookEvent) => Promise<PostReceiveResult | void> | PostReceiveResult | void) | undefined;
      const result = await handler?.(event);
      stop = Boolean(result && result.stopUpload);
    } else {
      if (!http) return; // HOOKS_URL was removed since this was queued
      const reply = await postHook(http, event, { id: deliveryId, attempt: job.attempts + 1 });
      stop = Boolean(reply.json && typeof reply.json === 'object' && (reply.json as Record<string, unknown>).stopUpload === true);
    }
    if (stop && event.type === 'post-receive') {
      logger.info({ uploadId: event.upload.id, target }, 'post-receive hook stopped the upload');
      await onStopUpload(event.upload.id);
    }
  }

  return { runBlocking, notify, flush, deliver, hasTargets: (type: HookType) => targetsFor(type).length > 0 };
}

export type HookDispatcher = ReturnType<typeof createHookDispatcher>;
