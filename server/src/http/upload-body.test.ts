import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { UploadBody } from './upload-body.js';

type ReadResult = { chunks: Buffer[]; bytes: number; text: string };

/** Reads the web stream to its end; rejects if it errors, fails the test if it takes over `timeoutMs`. */
async function readAll(stream: ReadableStream<Uint8Array>, timeoutMs = 5_000): Promise<ReadResult> {
  const reader = stream.getReader();
  const chunks: Buffer[] = [];
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i += 1) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error('stream did not end in time');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('stream did not end in time')), remaining);
    });
    const result = await Promise.race([reader.read(), timeout]).finally(() => clearTimeout(timer));
    if (result.done) break;
    chunks.push(Buffer.from(result.value));
  }
  const all = Buffer.concat(chunks);
  return { chunks, bytes: all.length, text: all.toString('utf8') };
}

describe('UploadBody', () => {
  it('passes every byte through and counts them', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    source.write('hello ');
    source.write(Buffer.from('world'));
    source.end('!');
    const result = await readAll(body.stream);
    expect(result.text).toBe('hello world!');
    expect(body.bytesReceived).toBe(12);
    expect(body.isFinished).toBe(true);
    expect(body.cutReason).toBeUndefined();
  });

  it('shows every chunk to the observer, in the order the consumer reads them', async () => {
    const source = new PassThrough();
    const seen: Buffer[] = [];
    const body = new UploadBody(source, 5_000, (chunk) => seen.push(Buffer.from(chunk)));
    for (let i = 0; i < 20; i += 1) source.write(Buffer.from(`chunk ${i};`));
    source.end();
    const result = await readAll(body.stream);
    expect(Buffer.concat(seen).toString('utf8')).toBe(result.text);
    expect(seen.length).toBe(result.chunks.length);
  });

  it('ends an empty source at once', async () => {
    const body = new UploadBody(Readable.from([]), 5_000);
    const result = await readAll(body.stream);
    expect(result.bytes).toBe(0);
    expect(body.bytesReceived).toBe(0);
    expect(body.cutReason).toBeUndefined();
  });

  it('cuts a body that goes quiet after the idle timeout, keeping what arrived', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 100);
    source.write('partial');
    const started = Date.now();
    const result = await readAll(body.stream, 3_000);
    const elapsed = Date.now() - started;
    expect(result.text).toBe('partial');
    expect(body.cutReason).toBe('idle');
    expect(body.isFinished).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(80);
    expect(elapsed).toBeLessThan(2_000);
    // Bytes after the cut are not taken.
    source.write('late');
    await sleep(20);
    expect(body.bytesReceived).toBe(7);
    source.destroy();
  });

  it('cuts a body that never sends a byte', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 50);
    const result = await readAll(body.stream, 3_000);
    expect(result.bytes).toBe(0);
    expect(body.cutReason).toBe('idle');
    source.destroy();
  });

  it('keeps an active body alive past the idle timeout', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 250);
    const reading = readAll(body.stream, 5_000);
    const started = Date.now();
    for (let i = 0; i < 12; i += 1) {
      source.write(`chunk${i};`);
      await sleep(50);
    }
    expect(Date.now() - started).toBeGreaterThan(250);
    source.end();
    const result = await reading;
    expect(body.cutReason).toBeUndefined();
    expect(result.text).toBe(Array.from({ length: 12 }, (_, i) => `chunk${i};`).join(''));
  });

  it('does not count backpressure from a slow consumer as idle', async () => {
    const source = new PassThrough({ highWaterMark: 16 });
    const body = new UploadBody(source, 60);
    const chunk = Buffer.alloc(1024, 7);
    // Far more than the stream queues: the body must pause the source.
    let written = 0;
    for (let i = 0; i < 64; i += 1) {
      source.write(chunk);
      written += chunk.length;
    }
    source.end();
    // Nobody reads for several idle periods.
    await sleep(400);
    expect(body.cutReason).toBeUndefined();
    expect(body.isFinished).toBe(false);
    expect(body.bytesReceived).toBeLessThan(written);
    // Then the consumer drains slowly, still slower than the idle timeout between some reads.
    const reader = body.stream.getReader();
    let received = 0;
    for (let i = 0; i < 1_000; i += 1) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      if (i % 16 === 0) await sleep(100);
    }
    expect(received).toBe(written);
    expect(body.bytesReceived).toBe(written);
    expect(body.cutReason).toBeUndefined();
  });

  it("cut('shutdown') ends the stream gracefully and stops reading", async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    source.write('abc');
    await sleep(10);
    body.cut('shutdown');
    source.write('def');
    const result = await readAll(body.stream, 2_000);
    expect(result.text).toBe('abc');
    expect(body.cutReason).toBe('shutdown');
    expect(body.bytesReceived).toBe(3);
    expect(source.listenerCount('data')).toBe(0);
  });

  it('is cut once: a later cut keeps the first reason', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    body.cut('shutdown');
    body.cut('idle');
    body.cut('client-aborted');
    expect(body.cutReason).toBe('shutdown');
    await readAll(body.stream, 2_000);
  });

  it('a source that ends normally is not a cut, and a later cut does nothing', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    source.end('done');
    await readAll(body.stream, 2_000);
    body.cut('shutdown');
    expect(body.cutReason).toBeUndefined();
  });

  it("a destroyed source closes the stream gracefully as 'client-aborted'", async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    const reading = readAll(body.stream, 2_000);
    source.write('first part');
    await sleep(10);
    source.destroy();
    const result = await reading;
    expect(result.text).toBe('first part');
    expect(body.cutReason).toBe('client-aborted');
    expect(body.bytesReceived).toBe(10);
  });

  it("a source error closes the stream gracefully as 'client-aborted' and never goes unhandled", async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    const reading = readAll(body.stream, 2_000);
    source.write('some bytes');
    await sleep(10);
    source.destroy(new Error('ECONNRESET'));
    const result = await reading;
    expect(result.text).toBe('some bytes');
    expect(body.cutReason).toBe('client-aborted');
    // A later error on the request must not crash the process.
    expect(source.listenerCount('error')).toBeGreaterThan(0);
    expect(() => source.emit('error', new Error('again'))).not.toThrow();
  });

  it('stops reading when the consumer cancels', async () => {
    const source = new PassThrough();
    const body = new UploadBody(source, 5_000);
    source.write('abc');
    await body.stream.cancel('limit reached');
    expect(body.isFinished).toBe(true);
    expect(source.listenerCount('data')).toBe(0);
    expect(source.listenerCount('end')).toBe(0);
    source.destroy();
  });

  describe('minimum rate (MIN_UPLOAD_RATE)', () => {
    /** Writes `chunk` every `everyMs` until stopped or `maxWrites` (bounded). */
    function trickle(source: PassThrough, chunk: string, everyMs: number, maxWrites = 200): () => void {
      let writes = 0;
      const timer = setInterval(() => {
        if (writes++ >= maxWrites || source.destroyed || source.writableEnded) return clearInterval(timer);
        source.write(chunk);
      }, everyMs);
      return () => clearInterval(timer);
    }

    it("cuts a body slower than the rate over a whole window as 'too-slow', keeping every byte that arrived", async () => {
      const source = new PassThrough();
      // 1000 bytes/s over 200 ms: each window must bring 200 bytes; this one brings about 40.
      const body = new UploadBody(source, 5_000, undefined, { bytesPerSecond: 1000, windowMs: 200 });
      const stop = trickle(source, 'abcd', 20);
      const started = Date.now();
      const result = await readAll(body.stream, 3_000);
      stop();
      expect(body.cutReason).toBe('too-slow');
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(result.bytes).toBe(body.bytesReceived);
      expect(result.text).toMatch(/^(abcd)+$/);
      source.destroy();
    });

    it('a trickle that the idle timeout alone would never end (a byte before every idle deadline) is cut', async () => {
      const source = new PassThrough();
      const body = new UploadBody(source, 100, undefined, { bytesPerSecond: 1000, windowMs: 300 });
      const stop = trickle(source, 'x', 80);
      await readAll(body.stream, 3_000);
      stop();
      expect(body.cutReason).toBe('too-slow');
      source.destroy();
    });

    it('leaves a body at the rate alone, and one with no rate at all', async () => {
      for (const rate of [{ bytesPerSecond: 1000, windowMs: 100 }, undefined, { bytesPerSecond: 0, windowMs: 100 }]) {
        const source = new PassThrough();
        const body = new UploadBody(source, 5_000, undefined, rate);
        const reading = readAll(body.stream, 3_000);
        // 1 KiB every 20 ms: 50 KiB/s, far above 1000 bytes/s (or slow, when no rate applies).
        const stop = trickle(source, rate?.bytesPerSecond ? 'y'.repeat(1024) : 'z', 20, 20);
        await sleep(450);
        stop();
        source.end();
        await reading;
        expect(body.cutReason).toBeUndefined();
      }
    });

    it('a window in which the store held the body back does not count against the client', async () => {
      const source = new PassThrough();
      const body = new UploadBody(source, 5_000, undefined, { bytesPerSecond: 1000, windowMs: 100 });
      // Fill the queue and read nothing for three windows: the store, not the client, is slow.
      for (let i = 0; i < 16; i += 1) source.write(Buffer.alloc(1024));
      await sleep(350);
      expect(body.cutReason).toBeUndefined();
      source.end();
      const result = await readAll(body.stream, 3_000);
      expect(result.bytes).toBe(16 * 1024);
      expect(body.cutReason).toBeUndefined();
    });
  });
});
