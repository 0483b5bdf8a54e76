import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createStreamingDigests, type DigestTap } from './streaming-digest.js';

const bytes = (length: number, seed = 1) => Buffer.from(Array.from({ length }, (_, i) => (i * 31 + seed) % 251));
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Feeds `data` to a tap in pieces of `piece` bytes. */
function feed(tap: DigestTap, data: Buffer, piece = 1000): void {
  for (let at = 0; at < data.length; at += piece) tap.observe(data.subarray(at, at + piece));
}

describe('streaming digest', () => {
  it('an upload known to be longer than maxBytes gets no tap at all (its first bytes would be hashed for nothing)', () => {
    const digests = createStreamingDigests({ maxBytes: 2_500 });
    expect(digests.tap(undefined, 0, 2_501)).toBeUndefined();
    expect(digests.tap('u', 0, 10_000)).toBeUndefined();
    expect(digests.tap('v', 0, 2_500)).toBeDefined();
    expect(digests.tap('w', 0)).toBeDefined();
  });

  it('a body from offset 0 that was stored whole gives the sha256 and the first bytes', () => {
    const digests = createStreamingDigests();
    const data = bytes(10_000);
    const tap = digests.tap(undefined, 0)!;
    feed(tap, data, 777);
    const digest = tap.finish('u1', data.length);
    expect(digest?.sha256).toBe(sha(data));
    expect(digest?.bytes).toBe(data.length);
    expect(digest?.head.equals(data.subarray(0, 4100))).toBe(true);
    expect(digests.size).toBe(0);
  });

  it('a small upload keeps all of its bytes as the head; an empty one hashes to the empty digest', () => {
    const digests = createStreamingDigests();
    const small = bytes(10);
    const tap = digests.tap('small', 0)!;
    feed(tap, small);
    expect(tap.finish('small', 10)?.head.equals(small)).toBe(true);
    const empty = digests.tap(undefined, 0)!;
    expect(empty.finish('empty', 0)).toEqual({ sha256: sha(Buffer.alloc(0)), bytes: 0, head: Buffer.alloc(0) });
  });

  it('consecutive requests continue the digest where the stored bytes ended', () => {
    const digests = createStreamingDigests();
    const data = bytes(9_000);
    const first = digests.tap('u', 0)!;
    feed(first, data.subarray(0, 3_000));
    first.settle('u', 3_000);
    expect(digests.size).toBe(1);
    const second = digests.tap('u', 3_000)!;
    feed(second, data.subarray(3_000, 6_000));
    second.settle('u', 6_000);
    const third = digests.tap('u', 6_000)!;
    feed(third, data.subarray(6_000));
    const digest = third.finish('u', 9_000);
    expect(digest?.sha256).toBe(sha(data));
    expect(digest?.head.equals(data.subarray(0, 4100))).toBe(true);
  });

  it('fewer bytes stored than hashed: no digest, and no running state for the next request', () => {
    const digests = createStreamingDigests();
    const tap = digests.tap('u', 0)!;
    feed(tap, bytes(5_000));
    tap.settle('u', 4_000);
    expect(digests.size).toBe(0);
    expect(digests.tap('u', 4_000)).toBeUndefined();
    expect(digests.tap('u', 5_000)).toBeUndefined();

    const finishing = digests.tap('v', 0)!;
    feed(finishing, bytes(5_000));
    expect(finishing.finish('v', 4_999)).toBeUndefined();
  });

  it('a request that starts elsewhere (a gap, another instance wrote before) gets no tap and ends the sequence', () => {
    const digests = createStreamingDigests();
    expect(digests.tap('fresh', 100)).toBeUndefined();
    const settled = (id: string) => {
      const tap = digests.tap(id, 0)!;
      feed(tap, bytes(1_000));
      tap.settle(id, 1_000);
    };
    settled('u');
    expect(digests.tap('u', 1_500)).toBeUndefined();
    expect(digests.tap('u', 1_000)).toBeUndefined();
    // The state is taken by the first request at the right offset; a racing second one gets none.
    settled('v');
    expect(digests.tap('v', 1_000)).toBeDefined();
    expect(digests.tap('v', 1_000)).toBeUndefined();
  });

  it('an unknown stored offset (an error, a cut body) drops the running state', () => {
    const digests = createStreamingDigests();
    const tap = digests.tap('u', 0)!;
    feed(tap, bytes(1_000));
    tap.settle('u', undefined);
    expect(digests.size).toBe(0);
  });

  it('is bounded: the least recently continued upload goes first, idle ones expire, forget drops one', () => {
    let clock = 0;
    const digests = createStreamingDigests({ maxEntries: 3, idleMs: 1_000, now: () => clock });
    for (const id of ['a', 'b', 'c', 'd']) {
      const tap = digests.tap(id, 0)!;
      feed(tap, bytes(10));
      tap.settle(id, 10);
    }
    expect(digests.size).toBe(3);
    expect(digests.tap('a', 10)).toBeUndefined();
    digests.forget('b');
    expect(digests.size).toBe(2);
    clock = 2_000;
    expect(digests.tap('c', 10)).toBeUndefined();
    expect(digests.size).toBe(0);
  });

  it('an upload longer than maxBytes is left to the read after the finish', () => {
    const digests = createStreamingDigests({ maxBytes: 2_500 });
    const first = digests.tap('u', 0)!;
    feed(first, bytes(2_000));
    first.settle('u', 2_000);
    const second = digests.tap('u', 2_000)!;
    feed(second, bytes(1_000));
    expect(second.finish('u', 3_000)).toBeUndefined();
    const settled = digests.tap('v', 0)!;
    feed(settled, bytes(3_000));
    settled.settle('v', 3_000);
    expect(digests.size).toBe(0);
  });

  it('ignores chunks after the request settled', () => {
    const digests = createStreamingDigests();
    const tap = digests.tap('u', 0)!;
    feed(tap, bytes(100));
    const digest = tap.finish('u', 100);
    expect(() => tap.observe(bytes(5))).not.toThrow();
    expect(digest?.sha256).toBe(sha(bytes(100)));
  });
});
