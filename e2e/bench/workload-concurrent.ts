/**
 * Many uploads at once: `count` uploads are created first (not timed), then each sends its
 * bytes in one PATCH on its own connection, all started together. Throughput is all bytes over
 * the time from the first PATCH to the last 204; latency is each PATCH's own duration (p99).
 * The server's peak RSS in this run is the "64 concurrent" memory figure.
 */
import { createUpload, keepAlive, patchRange } from './http-client.js';
import { formatSize, MiB, percentile, round1 } from './units.js';
import type { Workload } from './workload-types.js';

export type ConcurrentShape = Readonly<{ count: number; size: number }>;

/** `shapeOf(storage)`: on S3 fewer uploads run at once (each buffers parts on disk and in Ceph). */
export function concurrentWorkload(file: ConcurrentShape, s3: ConcurrentShape): Workload {
  const shapeOf = (storage: string) => (storage === 's3' ? s3 : file);
  return {
    name: 'concurrent',
    title: `${file.count} uploads × ${formatSize(file.size)} at once`,
    s3Title: `${s3.count} uploads × ${formatSize(s3.size)} at once`,
    storages: ['file', 's3'],
    metrics: [
      { key: 'mibPerSec', label: 'MiB/s', unit: 'MiB/s', higherIsBetter: true, digits: 0 },
      { key: 'p99Ms', label: 'p99 PATCH latency ms', unit: 'ms', higherIsBetter: false, digits: 0 },
      { key: 'vmHwmMiB', label: 'peak RSS MiB', unit: 'MiB', higherIsBetter: false, digits: 0 },
    ],
    estimateSec: (file.count * file.size) / MiB / 250,
    diskBytes: Math.max(file.count * file.size, s3.count * s3.size),
    async run(ctx) {
      const { count, size } = shapeOf(ctx.spec.storage);
      const agent = keepAlive(count);
      try {
        const created = await Promise.all(Array.from({ length: count }, () => createUpload(agent, ctx.server.url, size, ctx.signal)));
        const latencies: number[] = [];
        ctx.meter.begin();
        const started = performance.now();
        await Promise.all(
          created.map(async ({ uploadUrl }) => {
            const t0 = performance.now();
            await patchRange(agent, uploadUrl, 0, size, size, ctx.signal);
            latencies.push(performance.now() - t0);
          }),
        );
        const elapsedMs = performance.now() - started;
        ctx.meter.end();
        for (const { uploadId } of created) {
          const stored = await ctx.storedSize(uploadId);
          if (stored !== size) throw new Error(`server ${ctx.spec.name} stored ${stored ?? 'no'} bytes of ${uploadId}, expected ${size}`);
        }
        const total = count * size;
        return {
          metrics: { mibPerSec: round1(total / MiB / (elapsedMs / 1000)), p99Ms: Math.round(percentile(latencies, 99)) },
          ops: total, opsUnit: 'bytes',
          detail: { count, sizeBytes: size, elapsedMs: Math.round(elapsedMs), p50Ms: Math.round(percentile(latencies, 50)) },
        };
      } finally {
        agent.destroy();
      }
    },
  };
}
