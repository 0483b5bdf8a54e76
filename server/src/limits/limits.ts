import type { Config } from '../config.js';
import { HttpError } from '../errors.js';
import { formatBytes } from '../units/byte-size.js';
import { createMemoryLimitCounters, isRefusal, type LimitCounters, type LimitName, type Refusal, type StreamSlot } from './limit-counters.js';

export type LimitsDeps = Readonly<{
  limits: Config['limits'];
  /** Where the counts live: memory for one instance, Redis for several. @default in memory */
  counters?: LimitCounters;
  /** An in-progress entry older than this is forgotten (UPLOAD_EXPIRY: the upload has expired by then). */
  staleAfterMs: number;
  /** Told of every refusal (the tus_rate_limited_total metric). */
  onLimited?: (limit: LimitName) => void;
}>;

/** What each limit's 429 says: what was reached, the setting that sets it, what to do. */
function describe(refusal: Refusal, limits: Config['limits']): string {
  switch (refusal.limit) {
    case 'uploads-in-progress':
      return `uploads-in-progress: at most ${limits.uploadsInProgress} unfinished uploads at once (MAX_UPLOADS_IN_PROGRESS); finish or delete one first`;
    case 'creations-per-minute':
      return `creations-per-minute: at most ${limits.creationsPerMinute} new uploads a minute (MAX_CREATIONS_PER_MINUTE)`;
    case 'unfinished-bytes':
      return `unfinished-bytes: unfinished uploads may declare at most ${formatBytes(limits.unfinishedBytes)} together (MAX_UNFINISHED_BYTES); finish or delete one first`;
    case 'event-streams':
      return `event-streams: at most ${limits.eventStreams} status event streams open at once (MAX_EVENT_STREAMS); close one first`;
  }
}

/**
 * The per-subject abuse limits: who may create how much, and hold how many event streams.
 * A subject is a verified identity, or a client address when authentication is off
 * (`limitSubject`). Over a limit: 429 ERR_RATE_LIMITED naming it, with Retry-After.
 */
export function createLimits({ limits, counters = createMemoryLimitCounters(), staleAfterMs, onLimited }: LimitsDeps) {
  const creationLimited = limits.uploadsInProgress > 0 || limits.creationsPerMinute > 0 || limits.unfinishedBytes > 0;
  const creation = { uploadsInProgress: limits.uploadsInProgress, creationsPerMinute: limits.creationsPerMinute, unfinishedBytes: limits.unfinishedBytes, staleAfterMs };

  function refuse(refusal: Refusal): HttpError {
    onLimited?.(refusal.limit);
    return new HttpError('ERR_RATE_LIMITED', describe(refusal, limits), { 'Retry-After': String(refusal.retryAfterSeconds) });
  }

  return {
    /**
     * Counts a creation by `subject`, or throws the 429. `length` is the declared length
     * (undefined while deferred, counted as 0 bytes); `finished` uploads (length 0) are not in progress.
     */
    async admitCreation(subject: string, uploadId: string, length: number | undefined, finished: boolean): Promise<void> {
      if (!creationLimited) return;
      const refusal = await counters.admitCreation(subject, uploadId, length ?? 0, !finished, creation);
      if (refusal) throw refuse(refusal);
    },
    /** The upload is no longer in progress: finished, terminated, expired, or its creation failed. */
    async release(uploadId: string): Promise<void> {
      if (limits.uploadsInProgress > 0 || limits.unfinishedBytes > 0) await counters.release(uploadId);
    },
    /** Takes an event-stream slot of `subject` (close it when the stream ends), or throws the 429. */
    async openStream(subject: string): Promise<StreamSlot> {
      if (limits.eventStreams <= 0) return { close: async () => undefined };
      const slot = await counters.openStream(subject, limits.eventStreams);
      if (isRefusal(slot)) throw refuse(slot);
      return slot;
    },
  };
}

export type Limits = ReturnType<typeof createLimits>;

/**
 * Whom a request counts against: the verified subject, or, with authentication off, the
 * client's address (with TRUST_PROXY, the first X-Forwarded-For hop: the proxy's own address
 * would put every client in one bucket). Prefixed so an IP can never collide with a subject.
 */
export function limitSubject(
  subject: string | null | undefined,
  client: Readonly<{ remoteAddress: string | null | undefined; forwardedFor: string | null | undefined }>,
  trustProxy: boolean,
): string {
  if (subject) return `sub:${subject}`;
  const forwarded = trustProxy ? client.forwardedFor?.split(',')[0]?.trim() : undefined;
  return `ip:${forwarded || client.remoteAddress || 'unknown'}`;
}
