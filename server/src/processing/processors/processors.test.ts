import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { ByteRange } from '../../storage/index.js';
import { detectType } from './detect-type.js';
import { sha256 } from './sha256.js';
import type { ProcessorInput } from './types.js';
import { verifySize } from './verify-size.js';

/** A processor input over bytes in memory; `reads` records every range asked for. */
function input(data: Buffer, metadata: Record<string, string> = {}, { size = data.length, pieceSize = 64 * 1024 } = {}) {
  const reads: (ByteRange | undefined)[] = [];
  const value: ProcessorInput = {
    id: 'upload-1',
    size,
    metadata,
    previous: {},
    async read(range?: ByteRange) {
      reads.push(range);
      const bytes = range ? data.subarray(range.start, range.end + 1) : data;
      const pieces: Buffer[] = [];
      for (let offset = 0; offset < bytes.length; offset += pieceSize) pieces.push(bytes.subarray(offset, offset + pieceSize));
      return Readable.from(pieces);
    },
  };
  return { input: value, reads };
}

/** Deterministic pseudo-random bytes (AES-256-CTR keystream of a seed): the same on every run. */
function randomBytes(length: number, seed = 'processors'): Buffer {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

// --- Real headers -------------------------------------------------------------------------

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k += 1) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid 1×1 grayscale PNG. */
function png(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.from([0, 0]))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An ISO BMFF `ftyp` box (isom), then random "media": what an MP4 starts with. */
const mp4 = (size = 64 * 1024) => Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom', 'latin1'), Buffer.from([0, 0, 2, 0]), Buffer.from('isomiso2', 'latin1'), randomBytes(size - 24)]);
/** A Windows PE executable starts with the DOS header's "MZ". */
const peExe = (size = 64 * 1024) => Buffer.concat([Buffer.from('MZ', 'latin1'), Buffer.from([0x90, 0, 3, 0]), randomBytes(size - 6)]);
/** A 64-bit little-endian ELF header start. */
const elf = (size = 64 * 1024) => Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), randomBytes(size - 8)]);

describe('sha256 processor', () => {
  it('hashes known data', async () => {
    const { input: given } = input(Buffer.from('hello world'));
    const { result } = await sha256.run(given);
    expect(result).toEqual({ sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9', bytes: 11 });
  });

  it('hashes the empty file', async () => {
    const { result } = await sha256.run(input(Buffer.alloc(0)).input);
    expect(result).toEqual({ sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', bytes: 0 });
  });

  it('hashes data that arrives in many pieces, reading the whole file once', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { input: given, reads } = input(data, {}, { pieceSize: 64 * 1024 + 3 });
    const { result } = await sha256.run(given);
    expect(result).toEqual({ sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length });
    expect(reads).toEqual([undefined]);
  });

  it('throws when the stored bytes are fewer or more than the upload size', async () => {
    await expect(sha256.run(input(Buffer.from('short'), {}, { size: 10 }).input)).rejects.toThrow('read 5 bytes but the upload has 10');
    await expect(sha256.run(input(Buffer.from('longer than that'), {}, { size: 3 }).input)).rejects.toThrow('read 16 bytes but the upload has 3');
  });

  it('fails (to be retried) when the stream errors', async () => {
    const given: ProcessorInput = {
      ...input(Buffer.alloc(0)).input,
      size: 10,
      read: async () =>
        new Readable({
          read() {
            this.destroy(new Error('EIO: disk said no'));
          },
        }),
    };
    await expect(sha256.run(given)).rejects.toThrow('EIO: disk said no');
  });
});

describe('with a digest streamed as the bytes arrived', () => {
  const streamedOf = (data: Buffer) => ({ sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length, head: Buffer.from(data.subarray(0, 4100)) });

  it('sha256 and type give the same results as a full read, and read nothing', async () => {
    for (const data of [mp4(), peExe(), Buffer.from('hello world'), Buffer.alloc(0)]) {
      const full = input(data, { filetype: 'video/mp4' });
      const streamed = input(data, { filetype: 'video/mp4' });
      const withDigest = { ...streamed.input, streamed: streamedOf(data) };
      expect(await sha256.run(withDigest)).toEqual(await sha256.run(full.input));
      expect(await detectType(['video/*']).run(withDigest)).toEqual(await detectType(['video/*']).run(full.input));
      expect(streamed.reads).toEqual([]);
    }
  });

  it('a digest of fewer or more bytes than the upload is ignored: the file is read', async () => {
    const data = mp4();
    for (const digest of [streamedOf(data.subarray(0, 5_000)), streamedOf(Buffer.concat([data, Buffer.from('x')]))]) {
      const { input: given, reads } = input(data);
      const { result } = await sha256.run({ ...given, streamed: digest });
      expect(result).toEqual({ sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length });
      expect((await detectType([]).run({ ...given, streamed: digest })).result.detected).toBe('video/mp4');
      expect(reads).toHaveLength(2);
    }
  });
});

describe('size processor', () => {
  it('passes when the stored bytes are the declared size', async () => {
    const processor = verifySize(async () => ({ offset: 5, size: 5 }));
    expect(await processor.run(input(Buffer.from('hello')).input)).toEqual({ result: { declared: 5, stored: 5 } });
  });

  it('throws when the stored offset is not the declared size', async () => {
    const processor = verifySize(async () => ({ offset: 3, size: 5 }));
    await expect(processor.run(input(Buffer.from('hello')).input)).rejects.toThrow('stored 3 bytes but the upload declared 5');
  });

  it('throws when the upload record changed its length', async () => {
    const processor = verifySize(async () => ({ offset: 5, size: 6 }));
    await expect(processor.run(input(Buffer.from('hello')).input)).rejects.toThrow('stored 5 bytes but the upload declared 5');
  });

  it('asks about the upload it is given', async () => {
    const asked: string[] = [];
    const processor = verifySize(async (id) => {
      asked.push(id);
      return { offset: 0, size: 0 };
    });
    await processor.run(input(Buffer.alloc(0)).input);
    expect(asked).toEqual(['upload-1']);
  });
});

describe('type processor', () => {
  const video = detectType(['video/*']);
  const images = detectType(['image/png', 'image/jpeg']);
  const anything = detectType([]);

  it('reads only the leading bytes it needs', async () => {
    const { input: given, reads } = input(mp4(1024 * 1024));
    await video.run(given);
    expect(reads).toEqual([{ start: 0, end: 4099 }]);
    const small = input(Buffer.from('tiny'), { filetype: 'text/plain' });
    await video.run(small.input);
    expect(small.reads).toEqual([{ start: 0, end: 3 }]);
  });

  it('an MP4 declared as video/mp4 under video/* passes and matches', async () => {
    const outcome = await video.run(input(mp4(), { filetype: 'video/mp4' }).input);
    expect(outcome).toEqual({ result: { detected: 'video/mp4', declared: 'video/mp4', matchesDeclared: true } });
  });

  it('a PNG passes image/png and is rejected under video/*', async () => {
    expect(await images.run(input(png(), { filetype: 'image/png' }).input)).toEqual({ result: { detected: 'image/png', declared: 'image/png', matchesDeclared: true } });
    const outcome = await video.run(input(png(), { filetype: 'video/mp4' }).input);
    expect(outcome.result).toEqual({ detected: 'image/png', declared: 'video/mp4', matchesDeclared: false });
    expect(outcome.reject).toBe("the file's content is image/png although it was declared as video/mp4; allowed: video/*");
  });

  it('a Windows executable named movie.mp4 declared as video/mp4 is rejected', async () => {
    const outcome = await video.run(input(peExe(), { filename: 'movie.mp4', filetype: 'video/mp4' }).input);
    expect(outcome.result).toEqual({ detected: 'application/x-msdownload', declared: 'video/mp4', matchesDeclared: false });
    expect(outcome.reject).toContain('application/x-msdownload');
    expect(outcome.reject).toContain('video/mp4');
  });

  it('an ELF binary declared as video/mp4 is rejected', async () => {
    const outcome = await video.run(input(elf(), { filetype: 'video/mp4' }).input);
    expect(outcome.result.detected).toBe('application/x-elf');
    expect(outcome.reject).toContain('application/x-elf');
  });

  it('an executable with no declared type is rejected, naming what it is', async () => {
    const outcome = await images.run(input(peExe()).input);
    expect(outcome.result).toEqual({ detected: 'application/x-msdownload', declared: null, matchesDeclared: null });
    expect(outcome.reject).toBe("the file's content is application/x-msdownload; allowed: image/png, image/jpeg");
  });

  it('declared type parameters and case do not matter', async () => {
    const outcome = await video.run(input(mp4(), { filetype: 'Video/MP4; codecs="avc1"' }).input);
    expect(outcome).toEqual({ result: { detected: 'video/mp4', declared: 'video/mp4', matchesDeclared: true } });
  });

  it('text-like content with no magic bytes is allowed when its declared type is', async () => {
    const text = detectType(['text/*', 'application/json']);
    expect(await text.run(input(Buffer.from('just some words\n'), { filetype: 'text/plain' }).input)).toEqual({
      result: { detected: null, declared: 'text/plain', matchesDeclared: null },
    });
    expect((await text.run(input(Buffer.from('{"a":1}'), { filetype: 'application/json; charset=utf-8' }).input)).reject).toBeUndefined();
  });

  it('undetected content declared as a type that has magic bytes is rejected', async () => {
    const outcome = await video.run(input(randomBytes(8192), { filetype: 'video/mp4' }).input);
    expect(outcome.result.detected).toBeNull();
    expect(outcome.reject).toBe("the file's content does not look like video/mp4; allowed: video/*");
  });

  it('undetected content declared as a text type outside the list is rejected', async () => {
    const outcome = await video.run(input(Buffer.from('hello'), { filetype: 'text/plain' }).input);
    expect(outcome.reject).toBe("the file's content does not look like text/plain; allowed: video/*");
  });

  it('undetected content with no declared type is rejected under a list', async () => {
    const outcome = await video.run(input(Buffer.from('hello')).input);
    expect(outcome.reject).toBe("the file's content does not look like any allowed type; allowed: video/*");
  });

  it('a zero-byte upload reads nothing: allowed as text, rejected as video', async () => {
    const empty = () =>
      ({
        ...input(Buffer.alloc(0)).input,
        read: () => Promise.reject(new Error('a zero-byte upload must not be read')),
      }) satisfies ProcessorInput;
    expect(await detectType(['text/plain']).run({ ...empty(), metadata: { filetype: 'text/plain' } })).toEqual({
      result: { detected: null, declared: 'text/plain', matchesDeclared: null },
    });
    expect((await video.run({ ...empty(), metadata: { filetype: 'video/mp4' } })).reject).toContain('does not look like video/mp4');
    expect(await anything.run(empty())).toEqual({ result: { detected: null, declared: null, matchesDeclared: null } });
  });

  it('without ALLOWED_TYPES nothing is rejected, but the real type is still reported', async () => {
    expect(await anything.run(input(peExe(), { filetype: 'video/mp4' }).input)).toEqual({
      result: { detected: 'application/x-msdownload', declared: 'video/mp4', matchesDeclared: false },
    });
    expect(await anything.run(input(randomBytes(100)).input)).toEqual({ result: { detected: null, declared: null, matchesDeclared: null } });
  });
});
