import { describe, expect, it } from 'vitest';
import { lockerContract } from './locker.contract.js';
import { createMemoryLocker } from './memory-locker.js';

lockerContract('in process', async () => ({
  open: (options) => createMemoryLocker(options),
  shared: false,
  destroy: async () => undefined,
}));

const never = () => new AbortController().signal;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What only the in-process locker promises, as @tus/server's MemoryLocker did. */
describe('in-process locker', () => {
  it('asks the holder to release once per new waiter, and the next holder when more wait', async () => {
    const locker = createMemoryLocker();
    const asked: string[] = [];
    const holder = locker.newLock('u');
    await holder.lock(never(), () => void asked.push('holder'));
    const first = locker.newLock('u');
    const second = locker.newLock('u');
    const gotFirst = first.lock(never(), () => void asked.push('first'));
    const gotSecond = second.lock(never(), () => void asked.push('second'));
    await tick();
    expect(asked).toEqual(['holder', 'holder']);
    await holder.unlock();
    await gotFirst;
    await tick();
    // The second still waits: the first, now holding, hears it once.
    expect(asked).toEqual(['holder', 'holder', 'first']);
    await first.unlock();
    await gotSecond;
    await second.unlock();
    await tick();
    expect(asked).toEqual(['holder', 'holder', 'first']);
  });

  it('throws when a lock it does not hold is unlocked, like MemoryLocker', async () => {
    const locker = createMemoryLocker();
    await expect(locker.newLock('u').unlock()).rejects.toThrow('Releasing an unlocked lock!');
    const holder = locker.newLock('u');
    await holder.lock(never(), () => undefined);
    // Another Lock for the same id does not release the holder's.
    await expect(locker.newLock('u').unlock()).rejects.toThrow('Releasing an unlocked lock!');
    await holder.unlock();
    await expect(holder.unlock()).rejects.toThrow('Releasing an unlocked lock!');
  });
});
