/** The per-subject limits, by the names 429 answers and metrics use. */
export const LIMIT_NAMES = ['uploads-in-progress', 'creations-per-minute', 'unfinished-bytes', 'event-streams'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/** The creation limits of one subject; 0 switches one off. */
export type CreationLimits = Readonly<{
  uploadsInProgress: number;
  creationsPerMinute: number;
  unfinishedBytes: number;
  /**
   * An in-progress entry older than this is dropped whoever forgot it (a creation that failed
   * after it was counted, an instance that died): by then the upload has expired. 0 keeps them.
   */
  staleAfterMs: number;
}>;

/** A limit that was reached, and how many seconds until trying again makes sense. */
export type Refusal = Readonly<{ limit: LimitName; retryAfterSeconds: number }>;

/** An open event stream's slot: closing it frees the slot (idempotent). */
export type StreamSlot = Readonly<{ close(): Promise<void> }>;

/**
 * The counts behind the per-subject limits. One instance keeps them in memory; several
 * share them in Redis, so a subject's limit holds across instances. Each check and its
 * count are one step: two creations racing on two instances cannot both take the last slot.
 */
export interface LimitCounters {
  /**
   * Checks every creation limit of `subject`; if all hold, counts the creation and (unless
   * `track` is false: an upload finished at creation) records the upload as in progress with
   * its declared bytes. Returns the first limit reached, having counted nothing.
   */
  admitCreation(subject: string, uploadId: string, bytes: number, track: boolean, limits: CreationLimits): Promise<Refusal | undefined>;
  /** The upload is no longer in progress (finished, terminated, expired, never created). Idempotent. */
  release(uploadId: string): Promise<void>;
  /** Takes one of `subject`'s `max` event-stream slots, or answers the refusal. */
  openStream(subject: string, max: number): Promise<StreamSlot | Refusal>;
}

/** Retry-After of limits that free up when the subject's uploads finish or streams end: nothing tells when, so a minute. */
export const RETRY_LATER_SECONDS = 60;

/** Event streams end within the hour (status.ts); a slot older than this was never closed (a crashed instance). */
export const STREAM_SLOT_MAX_MS = 2 * 3600_000;

const MINUTE_MS = 60_000;

/** The fixed one-minute window `now` falls in, and the seconds until the next one. */
export function minuteWindow(now: number): Readonly<{ window: number; secondsLeft: number }> {
  const window = Math.floor(now / MINUTE_MS);
  return { window, secondsLeft: Math.max(1, Math.ceil(((window + 1) * MINUTE_MS - now) / 1000)) };
}

type Entry = { subject: string; bytes: number; at: number };

/** The counts of a single instance, in memory (lost on restart, which only forgives). */
export function createMemoryLimitCounters(now: () => number = Date.now): LimitCounters {
  /** In-progress uploads by subject; each id's entry. */
  const bySubject = new Map<string, Map<string, Entry>>();
  const entries = new Map<string, Entry>();
  const windows = new Map<string, { window: number; count: number }>();
  const streams = new Map<string, Map<symbol, number>>();

  function drop(id: string): void {
    const entry = entries.get(id);
    if (!entry) return;
    entries.delete(id);
    const own = bySubject.get(entry.subject);
    own?.delete(id);
    if (own?.size === 0) bySubject.delete(entry.subject);
  }

  function pruneStale(subject: string, staleAfterMs: number, at: number): void {
    if (staleAfterMs <= 0) return;
    for (const [id, entry] of bySubject.get(subject) ?? []) if (entry.at < at - staleAfterMs) drop(id);
  }

  return {
    async admitCreation(subject, uploadId, bytes, track, limits) {
      const at = now();
      pruneStale(subject, limits.staleAfterMs, at);
      const own = bySubject.get(subject);
      if (limits.uploadsInProgress > 0 && (own?.size ?? 0) >= limits.uploadsInProgress) return { limit: 'uploads-in-progress', retryAfterSeconds: RETRY_LATER_SECONDS };
      if (limits.unfinishedBytes > 0) {
        let total = bytes;
        for (const entry of own?.values() ?? []) total += entry.bytes;
        if (total > limits.unfinishedBytes) return { limit: 'unfinished-bytes', retryAfterSeconds: RETRY_LATER_SECONDS };
      }
      if (limits.creationsPerMinute > 0) {
        const { window, secondsLeft } = minuteWindow(at);
        const current = windows.get(subject);
        const count = current?.window === window ? current.count : 0;
        if (count >= limits.creationsPerMinute) return { limit: 'creations-per-minute', retryAfterSeconds: secondsLeft };
        // Windows of subjects that went quiet are dropped once they pile up.
        if (windows.size >= 10_000) for (const [key, value] of windows) if (value.window < window) windows.delete(key);
        windows.set(subject, { window, count: count + 1 });
      }
      if (track && (limits.uploadsInProgress > 0 || limits.unfinishedBytes > 0)) {
        const entry = { subject, bytes, at };
        entries.set(uploadId, entry);
        if (own) own.set(uploadId, entry);
        else bySubject.set(subject, new Map([[uploadId, entry]]));
      }
      return undefined;
    },
    async release(uploadId) {
      drop(uploadId);
    },
    async openStream(subject, max) {
      const at = now();
      const own = streams.get(subject) ?? new Map<symbol, number>();
      for (const [slot, opened] of own) if (opened < at - STREAM_SLOT_MAX_MS) own.delete(slot);
      if (own.size >= max) return { limit: 'event-streams', retryAfterSeconds: RETRY_LATER_SECONDS };
      const slot = Symbol(subject);
      own.set(slot, at);
      streams.set(subject, own);
      return {
        async close() {
          own.delete(slot);
          if (own.size === 0 && streams.get(subject) === own) streams.delete(subject);
        },
      };
    },
  };
}

export const isRefusal = (value: StreamSlot | Refusal | undefined): value is Refusal => value !== undefined && 'limit' in value;
