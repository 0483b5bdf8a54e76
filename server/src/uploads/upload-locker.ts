import type { Locker } from '@tus/utils';

/**
 * The upload lock, as the core and @tus/server use it: one writer per upload (a PATCH, a
 * DELETE, the expiry sweep), readers that never queue behind each other, and release
 * requests (a newer request asks the holder to stop, as the tus spec recommends so a
 * half-open connection does not block a resuming client).
 *
 * Implementations: createMemoryLocker (one process) and RedisLocker (instances sharing
 * uploads). Both pass locker.contract.ts.
 */
export interface UploadLocker extends Locker {
  /** For readers (HEAD, the status resource): if a request holds `id`'s lock, ask it to let go (its requestRelease callback, exactly what a lock() waiter does) and resolve once the lock is free — or when `signal` aborts or the locker's acquire timeout passes (resolve, then: the caller reads anyway); it rejects only when the lock service itself cannot be reached (a 503 for the reader). Never takes the lock, so any number of readers wait together and all wake at the same release. Resolves at once when the lock is free. */
  waitUntilFree(id: string, signal?: AbortSignal): Promise<void>;
  /** Ends connections/timers the locker owns (no-op in process). */
  close(): Promise<void>;
}
