/**
 * Runs tasks one at a time per key, in the order they were added, within this process:
 * read-modify-write of one record, or notifications of one upload queued in order. A task
 * that fails does not block the ones after it. Keys with nothing left to run are forgotten.
 */
export function createKeyedSequence() {
  const tails = new Map<string, Promise<unknown>>();

  function run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = tails.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(task);
    tails.set(key, next);
    void next
      .finally(() => {
        if (tails.get(key) === next) tails.delete(key);
      })
      .catch(() => undefined);
    return next;
  }

  /** Resolves once every task added for `key` so far has ended, whatever its outcome. */
  async function settled(key: string): Promise<void> {
    await tails.get(key)?.catch(() => undefined);
  }

  return { run, settled };
}

export type KeyedSequence = ReturnType<typeof createKeyedSequence>;
