import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Kept in .ci/ so the repository's top level stays the documented layout.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['server/**/*.test.ts', 'e2e/**/*.test.ts', 'client-demo/**/*.test.ts'],
    // A local Ceph RADOS Gateway and a bucket for this run, for the S3 storage tests (inject('s3')),
    // and a local Redis for the several-instances modules (inject('redisUrl')); Debian's ffmpeg for
    // the media processors (inject('ffmpeg')).
    globalSetup: ['e2e/services/s3-global-setup.ts', 'e2e/services/redis-global-setup.ts', 'e2e/services/chromium-global-setup.ts', 'e2e/services/ffmpeg-global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores: end-to-end files start real servers and move hundreds of MiB each.
    maxWorkers: 2,
  },
});
