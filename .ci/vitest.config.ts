import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Kept in .ci/ so the repository's top level stays the documented layout.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['server/**/*.test.ts', 'e2e/**/*.test.ts', 'client-demo/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: end-to-end files start real servers and move hundreds of MiB each.
    maxWorkers: 2,
  },
});
