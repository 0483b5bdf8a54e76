import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

const PIECE = MiB;

export type TestFile = Readonly<{ path: string; size: number; sha256: string; seed: string }>;

/**
 * A deterministic pseudo-random byte source: the AES-256-CTR keystream for a seed. Fast
 * (hundreds of MiB/s), the same bytes for the same seed on every run, and any range can
 * be produced without generating what comes before it.
 */
export class ByteSource {
  private readonly key: Buffer;

  constructor(readonly seed: string) {
    this.key = createHash('sha256').update(seed).digest();
  }

  /** `length` bytes starting at `offset` (offset must be a multiple of 16). */
  bytes(offset: number, length: number): Buffer<ArrayBuffer> {
    if (offset % 16 !== 0) {
      const aligned = offset - (offset % 16);
      return this.bytes(aligned, length + (offset - aligned)).subarray(offset - aligned);
    }
    const iv = Buffer.alloc(16);
    // CTR counter = block index, in the low 8 bytes, big-endian.
    iv.writeBigUInt64BE(BigInt(offset / 16), 8);
    const cipher = createCipheriv('aes-256-ctr', this.key, iv);
    return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
  }
}

/** Writes `size` deterministic bytes (seeded by `seed`) to `dir/name` in 1 MiB pieces; returns its sha256. */
export async function makeFile(dir: string, name: string, size: number, seed = name): Promise<TestFile> {
  const file = path.join(dir, name);
  const source = new ByteSource(seed);
  const hash = createHash('sha256');
  const handle = await fsp.open(file, 'w');
  try {
    for (let offset = 0; offset < size; offset += PIECE) {
      const piece = source.bytes(offset, Math.min(PIECE, size - offset));
      hash.update(piece);
      await handle.write(piece, 0, piece.length, offset);
    }
  } finally {
    await handle.close();
  }
  return { path: file, size, sha256: hash.digest('hex'), seed };
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 and byte count of a Node stream, a web stream or any async iterable of bytes. */
export async function sha256Stream(stream: Readable | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

export async function sha256File(file: string): Promise<string> {
  return (await sha256Stream(fs.createReadStream(file))).sha256;
}

/** Bytes [start, end) of a file. */
export async function readRange(file: string, start: number, end: number): Promise<Buffer> {
  const handle = await fsp.open(file, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
