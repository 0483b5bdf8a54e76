import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HookType } from '../hooks/types.js';

/**
 * Every metric the server exposes on /metrics, defined once here with its help text.
 * Labels carry only values from small fixed sets (a method, a status code, a hook name,
 * an S3 command, a limit's name): never an upload id, a subject or a path, so a scrape's
 * size does not grow with the uploads.
 */

/** Methods counted under their own name; any other is `OTHER`. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS', 'PUT']);

/** A method label from a fixed set: what a client invents becomes `OTHER`. */
export const methodLabel = (method: string): string => (METHODS.has(method) ? method : 'OTHER');

/** A status label: the code, which HTTP keeps within 100-599. */
export const statusLabel = (status: number): string => (Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'OTHER');

/** An S3 command's name (`PutObjectCommand`), or `OTHER` for anything that does not look like one. */
export const operationLabel = (commandName: unknown): string => (typeof commandName === 'string' && /^[A-Za-z0-9]{1,64}Command$/.test(commandName) ? commandName : 'OTHER');

/** Processing end states, as the status resource names them. */
export type ProcessingEndState = 'done' | 'failed' | 'rejected';

/** Upload requests can take minutes (a 2 GiB PATCH): the default buckets stop at 10 s. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** A lock is usually free (microseconds); a release request takes a round trip; a timeout 30 s. */
const LOCK_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30];
const PROCESSING_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];
const S3_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type MetricsOptions = Readonly<{
  /** What `tus_uploads_in_progress` reports when scraped: the upload bodies streaming in right now. */
  uploadsInProgress?: () => number;
}>;

let processRegistry: Registry | undefined;

/**
 * Node's process metrics (CPU, memory, event loop lag, GC), one set per process: they describe
 * the process, not an app, and each set starts its own event loop monitor, so a test process
 * that builds hundreds of apps starts it once.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** One app's metrics, in a registry of its own (never prom-client's global one): apps in one process do not collide. */
export function createMetrics({ uploadsInProgress }: MetricsOptions = {}) {
  const registry = new Registry();
  const processes = processMetrics();
  const registers = [registry];

  const metrics = {
    requests: new Counter({
      name: 'tus_requests_total',
      help: 'HTTP requests answered, by method (OTHER for unknown ones) and status code.',
      labelNames: ['method', 'status'] as const,
      registers,
    }),
    requestDuration: new Histogram({
      name: 'tus_request_duration_seconds',
      help: 'Time from a request arriving to its response being ready (the whole body read, for uploads), by method.',
      labelNames: ['method'] as const,
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    bytesReceived: new Counter({ name: 'tus_bytes_received_total', help: 'Upload body bytes received (tus PATCH and creation-with-upload).', registers }),
    uploadsCreated: new Counter({ name: 'tus_uploads_created_total', help: 'Uploads created, concatenation partials and finals included.', registers }),
    uploadsFinished: new Counter({
      name: 'tus_uploads_finished_total',
      help: 'Uploads complete: the last byte stored (and a declared digest matched); a concatenation counts its final upload, not its partials.',
      registers,
    }),
    uploadsTerminated: new Counter({ name: 'tus_uploads_terminated_total', help: 'Uploads removed by a client (tus termination, DELETE).', registers }),
    uploadsExpired: new Counter({ name: 'tus_uploads_expired_total', help: 'Unfinished uploads the expiry sweep removed.', registers }),
    uploadsInProgress: new Gauge({
      name: 'tus_uploads_in_progress',
      help: 'Upload bodies streaming into this instance right now (PATCH and creation-with-upload requests still reading bytes).',
      registers,
      collect() {
        if (uploadsInProgress) this.set(uploadsInProgress());
      },
    }),
    hookInvocations: new Counter({
      name: 'tus_hook_invocations_total',
      help: 'Hook calls by hook: blocking hooks per target (in-process handler, HOOKS_URL), notifying hooks per delivery attempt.',
      labelNames: ['hook'] as const,
      registers,
    }),
    hookErrors: new Counter({
      name: 'tus_hook_errors_total',
      help: 'Hook calls that failed (threw, timed out, answered 5xx or not at all); a rejection a hook decides is not an error.',
      labelNames: ['hook'] as const,
      registers,
    }),
    processingJobs: new Counter({
      name: 'tus_processing_jobs_total',
      help: 'Processing jobs that reached an end state, by state (done, failed, rejected).',
      labelNames: ['state'] as const,
      registers,
    }),
    processingDuration: new Histogram({
      name: 'tus_processing_duration_seconds',
      help: 'Duration of one processing run (one attempt of one upload\'s job; a retry is another run).',
      buckets: PROCESSING_BUCKETS,
      registers,
    }),
    lockWait: new Histogram({
      name: 'tus_lock_wait_seconds',
      help: 'Time to acquire an upload\'s lock (PATCH, DELETE, expiry, concatenation), acquired or not.',
      labelNames: ['outcome'] as const,
      buckets: LOCK_BUCKETS,
      registers,
    }),
    s3RequestDuration: new Histogram({
      name: 'tus_s3_request_duration_seconds',
      help: 'Duration of S3 calls by command (retries included), successful or not.',
      labelNames: ['operation'] as const,
      buckets: S3_BUCKETS,
      registers,
    }),
    /** Requests refused by a per-subject limit, by the limit's name (a fixed set, never a subject). */
    rateLimited: new Counter({
      name: 'tus_rate_limited_total',
      help: 'Requests refused with 429 by a per-subject limit, by limit.',
      labelNames: ['limit'] as const,
      registers,
    }),
  };

  return {
    ...metrics,
    registry,
    contentType: registry.contentType,
    /** Counts one answered request (the request log calls it for every request). */
    request(method: string, status: number, seconds: number, bytesIn: number | undefined): void {
      const label = methodLabel(method);
      metrics.requests.inc({ method: label, status: statusLabel(status) });
      metrics.requestDuration.observe({ method: label }, seconds);
      if (bytesIn) metrics.bytesReceived.inc(bytesIn);
    },
    /** An S3 call ended (storage.observeRequests hands each one here). */
    s3Request: (operation: string, seconds: number): void => {
      metrics.s3RequestDuration.observe({ operation: operationLabel(operation) }, seconds);
    },
    hookCalled(hook: HookType): void {
      metrics.hookInvocations.inc({ hook });
    },
    hookFailed(hook: HookType): void {
      metrics.hookErrors.inc({ hook });
    },
    processingEnded(state: ProcessingEndState): void {
      metrics.processingJobs.inc({ state });
    },
    /** The scrape: this app's metrics, then the process's. */
    async render(): Promise<string> {
      const [own, shared] = await Promise.all([registry.metrics(), processes.metrics()]);
      return `${own}\n${shared}`;
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
