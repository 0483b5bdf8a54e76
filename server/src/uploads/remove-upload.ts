import type { Locker } from '@tus/utils';
import type { UploadStorage } from '../storage/index.js';

/** How long a removal waits for the upload's lock (a request writing to it is asked to let go at once). */
const LOCK_WAIT_MS = 10_000;

/**
 * Runs `action` holding the upload's lock, as a PATCH or DELETE does: nothing writes to the
 * upload meanwhile, and readers (HEAD, the status resource) wait for the release, so they
 * see the upload before or after, never halfway. A holder is asked to let go (a PATCH ends,
 * keeping what it stored); the lock is waited for at most `waitMs` (then it throws).
 */
export async function withUploadLock<T>(locker: Locker, id: string, action: () => Promise<T>, waitMs = LOCK_WAIT_MS): Promise<T> {
  const lock = locker.newLock(id);
  // The removal is short: a request that wants the lock meanwhile waits for it to end.
  await lock.lock(AbortSignal.timeout(waitMs), () => undefined);
  try {
    return await action();
  } finally {
    await lock.unlock();
  }
}

/**
 * Removes an upload the server itself decided to drop (processing rejected it): its bytes,
 * its record and its settled marker (both stores remove the marker with the upload), under
 * its lock. Resolves false when it was already gone (a DELETE won, or a run before a restart
 * removed it); any other failure throws, so the caller can try again.
 */
export async function removeUpload(storage: UploadStorage, locker: Locker, id: string): Promise<boolean> {
  return withUploadLock(locker, id, async () => {
    try {
      await storage.datastore.remove(id);
      return true;
    } catch (error) {
      if ((error as { status_code?: number }).status_code === 404) return false;
      throw error;
    }
  });
}
