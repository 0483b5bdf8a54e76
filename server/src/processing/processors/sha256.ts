import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Processor } from './types.js';

export type Sha256Result = Readonly<{ sha256: string; bytes: number }>;

/**
 * The sha256 of the stored bytes, streamed: memory stays flat whatever the file size. When
 * the upload core hashed every byte as it arrived, that digest is the answer and the file
 * is not read again.
 */
export const sha256: Processor<Sha256Result> = {
  name: 'sha256',
  quick: ({ size, streamed }) => streamed?.bytes === size,
  async run({ size, read, streamed }) {
    if (streamed?.bytes === size) return { result: { sha256: streamed.sha256, bytes: size } };
    const hash = createHash('sha256');
    let bytes = 0;
    await pipeline(await read(), async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        bytes += chunk.byteLength;
        hash.update(chunk);
      }
      yield* [];
    });
    if (bytes !== size) throw new Error(`read ${bytes} bytes but the upload has ${size}`);
    return { result: { sha256: hash.digest('hex'), bytes } };
  },
};
