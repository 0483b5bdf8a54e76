/**
 * Reads in flight per key, for a cache in front of a store: a read that overlapped a write of
 * its key may have seen the old value or the new one, so its answer must not be remembered.
 * The writer calls `changing` when it starts and when it ends.
 */
export function trackOverlappingReads() {
  const reading = new Map<string, Set<{ stale: boolean }>>();
  return {
    /** Runs `read`; `keep` is given its answer unless a write of `key` (or of every key) began meanwhile. */
    async read<T>(key: string, read: () => Promise<T>, keep: (value: T) => void): Promise<T> {
      const mine = { stale: false };
      let reads = reading.get(key);
      if (!reads) reading.set(key, (reads = new Set()));
      reads.add(mine);
      try {
        const value = await read();
        if (!mine.stale) keep(value);
        return value;
      } finally {
        reads.delete(mine);
        if (reads.size === 0) reading.delete(key);
      }
    },
    /** A write of `key` starts or ends. */
    changing(key: string): void {
      for (const read of reading.get(key) ?? []) read.stale = true;
    },
    /** A write that may touch every key starts or ends. */
    changingAll(): void {
      for (const reads of reading.values()) for (const read of reads) read.stale = true;
    },
    /** Whether a read of `key` is in flight. */
    isReading: (key: string) => reading.has(key),
  };
}
