import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyHookSignature } from '../../server/src/hooks/signature.js';
import { pollUntil } from './server-process.js';

/** The JSON body the server POSTs to HOOKS_URL (read loosely: tests assert on it). */
export type HookPayload = Readonly<{
  type: string;
  deliveryId: string;
  attempt: number;
  sentAt: string;
  upload: Readonly<{ id: string; size: number | null; offset: number; metadata: Record<string, string>; createdAt: string | null }>;
  request: Readonly<{ method: string; uri: string; remoteAddress: string | null; headers: Record<string, string> }> | null;
  processing?: Readonly<{ state: string; results: Record<string, unknown>; error: string | null }>;
}>;

/** One signed POST that reached the receiver, in arrival order. */
export type HookDelivery = {
  /** Arrival order across the whole receiver, from 1. */
  readonly seq: number;
  /** The `Hook-Type` header. */
  readonly type: string;
  /** The `Hook-Delivery-Id` header. */
  readonly deliveryId: string;
  /** The payload's `attempt` (1 for the first try of a delivery). */
  readonly attempt: number;
  readonly uploadId: string | undefined;
  readonly payload: HookPayload;
  /** The body exactly as it arrived, for signature checks. */
  readonly rawBody: string;
  /** Lower-cased request headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** Date.now() when the whole body had arrived. */
  readonly receivedAt: number;
  /** The status it was answered with; undefined while pending, 0 when the sender went away first. */
  answeredStatus: number | undefined;
};

/** A request the receiver refused: bad signature, header/payload mismatch, or not JSON. */
export type HookFailure = Readonly<{ reason: string; headers: Readonly<Record<string, string>>; rawBody: string; receivedAt: number }>;

/** How to answer one delivery. Defaults: 200 with `{}` at once. */
export type HookReply = Readonly<{
  status?: number;
  /** JSON body (wins over `text`). */
  json?: unknown;
  /** A raw text body. */
  text?: string;
  /** Answer the first N deliveries of this hook type for each upload with 500 (retries count as deliveries). */
  failFirst?: number;
  /** Wait this long before answering (longer than HOOKS_TIMEOUT forces a timeout). */
  delayMs?: number;
  /** Keep the request open until releaseHeld() or close(). */
  hold?: boolean;
}>;

/** A fixed reply for every delivery of a type, or one computed per delivery (undefined: the default). */
export type HookScript = HookReply | ((delivery: HookDelivery) => HookReply | undefined);

export interface WebhookReceiver {
  /** `http://127.0.0.1:PORT/hooks`: the HOOKS_URL to give the server. */
  readonly url: string;
  readonly secret: string;
  /** Every verified delivery, in arrival order. */
  readonly deliveries: readonly HookDelivery[];
  /** Requests refused (signature or shape); a correct server produces none. */
  readonly failures: readonly HookFailure[];
  /** Scripts the answers to one hook type (replacing any earlier script for it). */
  script(type: string, script: HookScript): void;
  /** Forgets every script (deliveries stay recorded). */
  resetScripts(): void;
  /** The deliveries for one upload, in arrival order, optionally of one type. */
  forUpload(uploadId: string, type?: string): HookDelivery[];
  /** Waits (bounded) until `check` returns something other than undefined. */
  waitFor<T>(check: (deliveries: readonly HookDelivery[]) => T | undefined, description: string, timeoutMs?: number): Promise<T>;
  /** Waits (bounded) for a delivery of `type` for `uploadId` that was answered with a 2xx. */
  waitForDelivered(uploadId: string, type: string, timeoutMs?: number): Promise<HookDelivery>;
  /** Requests being held open right now. */
  heldCount(): number;
  /** Answers every held request with 200 `{}` (their scripts are not consulted again). */
  releaseHeld(): void;
  /** Stops listening, answers nothing more, drops held and delayed requests, closes every connection. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;

function lowerHeaders(req: http.IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/**
 * A real hook receiver on 127.0.0.1 (port 0): it checks every request with
 * verifyHookSignature, as a production receiver written in Node would, records what
 * arrived, and answers as each test scripts it.
 */
export async function startWebhookReceiver(secret: string, { path = '/hooks' } = {}): Promise<WebhookReceiver> {
  const deliveries: HookDelivery[] = [];
  const failures: HookFailure[] = [];
  const scripts = new Map<string, HookScript>();
  const held = new Map<HookDelivery, http.ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const answer = (delivery: HookDelivery | undefined, res: http.ServerResponse, status: number, body: string, contentType: string) => {
    if (delivery) held.delete(delivery);
    if (closed || res.writableEnded || res.destroyed) return;
    if (delivery) delivery.answeredStatus = status;
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };

  const refuse = (res: http.ServerResponse, failure: HookFailure, status: number) => {
    failures.push(failure);
    answer(undefined, res, status, JSON.stringify({ message: failure.reason }), 'application/json');
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      const receivedAt = Date.now();
      const headers = lowerHeaders(req);
      const rawBody = Buffer.concat(chunks).toString('utf8');
      if (req.method !== 'POST' || req.url !== path) {
        return refuse(res, { reason: `unexpected ${req.method} ${req.url}`, headers, rawBody, receivedAt }, 404);
      }
      if (size > MAX_BODY_BYTES) return refuse(res, { reason: `body of ${size} bytes`, headers, rawBody: '', receivedAt }, 413);
      const signatureOk = verifyHookSignature(secret, { body: rawBody, signature: headers['hook-signature'], timestamp: headers['hook-timestamp'] });
      if (!signatureOk) return refuse(res, { reason: 'invalid signature', headers, rawBody, receivedAt }, 401);
      let payload: HookPayload;
      try {
        payload = JSON.parse(rawBody) as HookPayload;
      } catch {
        return refuse(res, { reason: 'body is not JSON', headers, rawBody, receivedAt }, 400);
      }
      if (headers['content-type']?.split(';')[0]?.trim() !== 'application/json') {
        return refuse(res, { reason: `Content-Type ${headers['content-type']}`, headers, rawBody, receivedAt }, 415);
      }
      if (payload.type !== headers['hook-type'] || payload.deliveryId !== headers['hook-delivery-id']) {
        return refuse(res, { reason: 'Hook-Type or Hook-Delivery-Id does not match the payload', headers, rawBody, receivedAt }, 400);
      }

      const delivery: HookDelivery = {
        seq: deliveries.length + 1,
        type: payload.type,
        deliveryId: payload.deliveryId,
        attempt: payload.attempt,
        uploadId: payload.upload?.id,
        payload,
        rawBody,
        headers,
        receivedAt,
        answeredStatus: undefined,
      };
      deliveries.push(delivery);
      res.on('close', () => {
        held.delete(delivery);
        delivery.answeredStatus ??= 0;
      });

      const script = scripts.get(delivery.type);
      const reply: HookReply = (typeof script === 'function' ? script(delivery) : script) ?? {};
      const seenForUpload = deliveries.filter((d) => d.type === delivery.type && d.uploadId === delivery.uploadId).length;
      const respond = () => {
        if (reply.failFirst !== undefined && seenForUpload <= reply.failFirst) {
          return answer(delivery, res, 500, 'receiver failing on purpose', 'text/plain');
        }
        const status = reply.status ?? 200;
        if (reply.json !== undefined) return answer(delivery, res, status, JSON.stringify(reply.json), 'application/json');
        if (reply.text !== undefined) return answer(delivery, res, status, reply.text, 'text/plain');
        return answer(delivery, res, status, '{}', 'application/json');
      };
      if (reply.hold) {
        held.set(delivery, res);
        return;
      }
      if (reply.delayMs !== undefined && reply.delayMs > 0) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          respond();
        }, reply.delayMs);
        timers.add(timer);
        return;
      }
      respond();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${port}${path}`,
    secret,
    deliveries,
    failures,
    script(type, script) {
      scripts.set(type, script);
    },
    resetScripts() {
      scripts.clear();
    },
    forUpload(uploadId, type) {
      return deliveries.filter((d) => d.uploadId === uploadId && (type === undefined || d.type === type));
    },
    waitFor(check, description, timeoutMs = 15_000) {
      return pollUntil(() => check(deliveries), description, timeoutMs, 20);
    },
    waitForDelivered(uploadId, type, timeoutMs = 15_000) {
      return pollUntil(
        () => deliveries.find((d) => d.uploadId === uploadId && d.type === type && d.answeredStatus !== undefined && d.answeredStatus >= 200 && d.answeredStatus < 300),
        `a ${type} hook for ${uploadId} answered with 2xx`,
        timeoutMs,
        20,
      );
    },
    heldCount: () => held.size,
    releaseHeld() {
      for (const [delivery, res] of [...held]) answer(delivery, res, 200, '{}', 'application/json');
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        held.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
