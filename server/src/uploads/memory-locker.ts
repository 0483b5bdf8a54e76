import { ERRORS, type Lock, type RequestRelease } from '@tus/utils';
import type { UploadLocker } from './upload-locker.js';

export type MemoryLockerOptions = Readonly<{
  /** How long `lock()` waits at most (then `ERR_LOCK_TIMEOUT`) and `waitUntilFree()` at most (then it resolves). @default 30_000, like @tus/server's MemoryLocker */
  acquireTimeoutMs?: number;
}>;

type Waiter = { lock: Lock; requestRelease: RequestRelease; grant: () => void };

/** One locked upload: who holds it, who queues for it, who only waits to read. */
type Entry = { holder: Lock; requestRelease: RequestRelease; waiters: Waiter[]; readers: Set<() => void> };

/**
 * The in-process UploadLocker. Unlike @tus/server's MemoryLocker, whose waiters re-poll with
 * setImmediate (64 waiting HEADs kept a core busy), a waiter here sleeps on a promise that
 * the release resolves: the lock is handed to the oldest waiter, and every reader wakes.
 */
export function createMemoryLocker({ acquireTimeoutMs = 30_000 }: MemoryLockerOptions = {}): UploadLocker {
  const entries = new Map<string, Entry>();

  /** Called for each new waiter, as @tus/server expects: a newer request asks the holder to stop. */
  const askToRelease = (requestRelease: RequestRelease) => {
    // Deferred: the callback may unlock at once, and must not re-enter lock() or unlock().
    Promise.resolve()
      .then(requestRelease)
      .catch(() => undefined);
  };

  /** Ends a wait on abort or after the acquire timeout; returns the clean-up for the other outcome. */
  function bound(signal: AbortSignal | undefined, onGiveUp: () => void): () => void {
    const timer = setTimeout(giveUp, acquireTimeoutMs);
    signal?.addEventListener('abort', giveUp, { once: true });
    function cleanUp() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', giveUp);
    }
    function giveUp() {
      cleanUp();
      onGiveUp();
    }
    return cleanUp;
  }

  class MemoryLock implements Lock {
    private state: 'idle' | 'waiting' | 'held' = 'idle';

    constructor(private readonly id: string) {}

    lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
      if (this.state !== 'idle') return Promise.reject(new Error(`lock ${this.id} is already ${this.state} by this Lock`));
      const entry = entries.get(this.id);
      if (!entry) {
        entries.set(this.id, { holder: this, requestRelease, waiters: [], readers: new Set() });
        this.state = 'held';
        return Promise.resolve();
      }
      if (signal.aborted) return Promise.reject(ERRORS.ERR_LOCK_TIMEOUT);
      this.state = 'waiting';
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          lock: this,
          requestRelease,
          grant: () => {
            cleanUp();
            this.state = 'held';
            resolve();
          },
        };
        const cleanUp = bound(signal, () => {
          const current = entries.get(this.id);
          const index = current ? current.waiters.indexOf(waiter) : -1;
          if (index >= 0) current!.waiters.splice(index, 1);
          this.state = 'idle';
          reject(ERRORS.ERR_LOCK_TIMEOUT);
        });
        entry.waiters.push(waiter);
        askToRelease(entry.requestRelease);
      });
    }

    async unlock(): Promise<void> {
      const entry = entries.get(this.id);
      if (this.state !== 'held' || entry?.holder !== this) throw new Error('Releasing an unlocked lock!');
      this.state = 'idle';
      // Readers wake at every release, even when a waiter takes the lock next: what they read now is consistent.
      for (const wake of entry.readers) wake();
      entry.readers.clear();
      const next = entry.waiters.shift();
      if (!next) {
        entries.delete(this.id);
        return;
      }
      entry.holder = next.lock;
      entry.requestRelease = next.requestRelease;
      next.grant();
      // Those still queued asked the previous holder to stop; the new one must hear it too.
      if (entry.waiters.length > 0) askToRelease(next.requestRelease);
    }
  }

  return {
    newLock: (id: string): Lock => new MemoryLock(id),

    waitUntilFree(id: string, signal?: AbortSignal): Promise<void> {
      const entry = entries.get(id);
      if (!entry || signal?.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const wake = () => {
          cleanUp();
          resolve();
        };
        const cleanUp = bound(signal, () => {
          entries.get(id)?.readers.delete(wake);
          resolve();
        });
        entry.readers.add(wake);
        askToRelease(entry.requestRelease);
      });
    },

    close: async () => undefined,
  };
}
