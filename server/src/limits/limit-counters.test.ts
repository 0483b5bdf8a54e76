import { afterAll, describe, expect, it } from 'vitest';
import { connections, deletePrefix, redisUrl, testPrefix } from '../redis/test-redis.js';
import { createMemoryLimitCounters, isRefusal, minuteWindow, type CreationLimits, type LimitCounters } from './limit-counters.js';
import { createRedisLimitCounters } from './redis-limit-counters.js';

/** The same behaviour from both homes of the counts: memory (one instance) and Redis (several). */

const conns = connections();
const prefixes: string[] = [];

afterAll(async () => {
  if (redisUrl) for (const prefix of prefixes) await deletePrefix(conns.connect(), prefix);
  await conns.closeAll();
});

type Backend = readonly [string, () => LimitCounters];

const BACKENDS: Backend[] = [
  ['memory', () => createMemoryLimitCounters()],
  ...(redisUrl
    ? [
        [
          'redis',
          () => {
            const prefix = testPrefix('limits');
            prefixes.push(prefix);
            return createRedisLimitCounters({ redis: conns.connect(), prefix });
          },
        ] as Backend,
      ]
    : []),
];

const limits = (overrides: Partial<CreationLimits> = {}): CreationLimits => ({ uploadsInProgress: 0, creationsPerMinute: 0, unfinishedBytes: 0, staleAfterMs: 0, ...overrides });

describe.each(BACKENDS)('LimitCounters (%s)', (_name, open) => {
  it('counts uploads in progress per subject and frees one on release (idempotent)', async () => {
    const counters = open();
    const two = limits({ uploadsInProgress: 2 });
    expect(await counters.admitCreation('a', 'u1', 10, true, two)).toBeUndefined();
    expect(await counters.admitCreation('a', 'u2', 10, true, two)).toBeUndefined();
    expect(await counters.admitCreation('a', 'u3', 10, true, two)).toEqual({ limit: 'uploads-in-progress', retryAfterSeconds: 60 });
    expect(await counters.admitCreation('b', 'u4', 10, true, two)).toBeUndefined();
    await counters.release('u1');
    await counters.release('u1');
    expect(await counters.admitCreation('a', 'u5', 10, true, two)).toBeUndefined();
    expect(await counters.admitCreation('a', 'u6', 10, true, two)).toMatchObject({ limit: 'uploads-in-progress' });
  });

  it('an untracked creation (finished at creation) takes no slot', async () => {
    const counters = open();
    const one = limits({ uploadsInProgress: 1 });
    for (let i = 0; i < 3; i += 1) expect(await counters.admitCreation('a', `empty-${i}`, 0, false, one)).toBeUndefined();
    expect(await counters.admitCreation('a', 'u', 5, true, one)).toBeUndefined();
  });

  it('sums declared bytes of unfinished uploads', async () => {
    const counters = open();
    const kib = limits({ unfinishedBytes: 1024 });
    expect(await counters.admitCreation('a', 'u1', 1000, true, kib)).toBeUndefined();
    expect(await counters.admitCreation('a', 'u2', 25, true, kib)).toMatchObject({ limit: 'unfinished-bytes' });
    expect(await counters.admitCreation('a', 'u3', 24, true, kib)).toBeUndefined();
    await counters.release('u1');
    expect(await counters.admitCreation('a', 'u4', 1000, true, kib)).toBeUndefined();
  });

  it('counts creations of the current minute; a refusal counts nothing', async () => {
    const counters = open();
    const three = limits({ creationsPerMinute: 3 });
    for (let round = 0; round < 2; round += 1) {
      const subject = `rate-${round}`;
      const { window } = minuteWindow(Date.now());
      const answers = [];
      for (let i = 0; i < 5; i += 1) answers.push(await counters.admitCreation(subject, `${subject}-${i}`, 0, false, three));
      if (minuteWindow(Date.now()).window !== window) continue;
      expect(answers.slice(0, 3)).toEqual([undefined, undefined, undefined]);
      expect(answers[3]).toMatchObject({ limit: 'creations-per-minute' });
      expect(answers[3]!.retryAfterSeconds).toBeGreaterThan(0);
      expect(answers[3]!.retryAfterSeconds).toBeLessThanOrEqual(60);
      return;
    }
    throw new Error('two runs straddled a minute boundary');
  });

  it('forgets in-progress entries older than staleAfterMs', async () => {
    const counters = open();
    const stale = limits({ uploadsInProgress: 1, staleAfterMs: 100 });
    expect(await counters.admitCreation('a', 'u1', 1, true, stale)).toBeUndefined();
    expect(await counters.admitCreation('a', 'u2', 1, true, stale)).toMatchObject({ limit: 'uploads-in-progress' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await counters.admitCreation('a', 'u3', 1, true, stale)).toBeUndefined();
  });

  it('hands out at most max stream slots per subject; closing one frees it', async () => {
    const counters = open();
    const first = await counters.openStream('a', 2);
    const second = await counters.openStream('a', 2);
    expect(isRefusal(first) || isRefusal(second)).toBe(false);
    expect(await counters.openStream('a', 2)).toMatchObject({ limit: 'event-streams' });
    expect(isRefusal(await counters.openStream('b', 2))).toBe(false);
    if (isRefusal(first)) throw new Error('unreachable');
    await first.close();
    await first.close();
    expect(isRefusal(await counters.openStream('a', 2))).toBe(false);
    expect(await counters.openStream('a', 2)).toMatchObject({ limit: 'event-streams' });
  });
});
