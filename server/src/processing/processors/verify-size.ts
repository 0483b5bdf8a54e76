import type { Processor } from './types.js';

export type VerifySizeResult = Readonly<{ declared: number; stored: number }>;

/** The stored bytes must be exactly the declared Upload-Length: anything else is corruption. */
export function verifySize(stat: (id: string) => Promise<{ offset: number; size: number | undefined }>): Processor<VerifySizeResult> {
  return {
    name: 'size',
    // One look at the upload's record, no bytes.
    quick: () => true,
    async run({ id, size }) {
      const stored = await stat(id);
      if (stored.size !== size || stored.offset !== size) {
        throw new Error(`stored ${stored.offset} bytes but the upload declared ${size}`);
      }
      return { result: { declared: size, stored: stored.offset } };
    },
  };
}
