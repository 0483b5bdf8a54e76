/**
 * Resolves or rejects as `work` does, or rejects with `onTimeout()` after `ms`, whichever
 * comes first. The timer never outlives the race. (The work itself is not cancelled.)
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
