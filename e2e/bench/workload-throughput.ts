/**
 * One upload, timed from the first PATCH to the final 204 (the POST is not counted):
 *   single   the whole upload in ONE PATCH
 *   chunked  the same kind of bytes in sequential PATCHes over one keep-alive socket
 *   chunked-checksum  chunked with `Upload-Checksum: sha256` on every PATCH (ours only)
 *   memory   a large upload in one PATCH, for the server's peak RSS and whether it stays flat
 * The stored size is checked after every run.
 */
import { bodyChecksum, createUpload, keepAlive, patchRange } from './http-client.js';
import { formatSize, MiB, round1 } from './units.js';
import type { Metric, RunContext, Workload, WorkloadName } from './workload-types.js';

const THROUGHPUT: Metric = { key: 'mibPerSec', label: 'MiB/s', unit: 'MiB/s', higherIsBetter: true, digits: 0 };
const CPU_PER_GIB: Metric = { key: 'cpuSecPerGiB', label: 'server CPU s/GiB', unit: 's/GiB', higherIsBetter: false, digits: 2 };

async function oneUpload(ctx: RunContext, size: number, patchSize: number, checksum: boolean) {
  const agent = keepAlive(1);
  try {
    const { uploadUrl, uploadId } = await createUpload(agent, ctx.server.url, size, ctx.signal);
    if (checksum) for (const length of new Set([patchSize, size % patchSize].filter(Boolean))) bodyChecksum(length);
    ctx.meter.begin();
    const started = performance.now();
    const patches = await patchRange(agent, uploadUrl, 0, size, patchSize, ctx.signal, checksum);
    const elapsedMs = performance.now() - started;
    ctx.meter.end();
    const stored = await ctx.storedSize(uploadId);
    if (stored !== size) throw new Error(`server ${ctx.spec.name} stored ${stored ?? 'no'} bytes, expected ${size}`);
    return { elapsedMs, patches, mibPerSec: round1(size / MiB / (elapsedMs / 1000)) };
  } finally {
    agent.destroy();
  }
}

function uploadWorkload(name: WorkloadName, title: string, size: number, patchSize: number, metrics: readonly Metric[], mibPerSecGuess: number, checksum = false): Workload {
  return {
    name,
    title,
    storages: ['file', 's3'],
    // Plain @tus/server ignores Upload-Checksum: only ours (and its variants) can be measured with it.
    ...(checksum ? { roles: ['A', 'X'] as const } : {}),
    metrics,
    estimateSec: size / MiB / mibPerSecGuess,
    diskBytes: size,
    async run(ctx) {
      const { elapsedMs, patches, mibPerSec } = await oneUpload(ctx, size, patchSize, checksum);
      return { metrics: { mibPerSec }, ops: size, opsUnit: 'bytes', detail: { sizeBytes: size, patchBytes: patchSize, patches, elapsedMs: Math.round(elapsedMs) } };
    },
  };
}

export function singleWorkload(size: number): Workload {
  return uploadWorkload('single', `${formatSize(size)} in one PATCH`, size, size, [THROUGHPUT, CPU_PER_GIB], 350);
}

export function chunkedWorkload(size: number, patchSize: number): Workload {
  return uploadWorkload('chunked', `${formatSize(size)} in ${formatSize(patchSize)} PATCHes`, size, patchSize, [THROUGHPUT, CPU_PER_GIB], 300);
}

export function chunkedChecksumWorkload(size: number, patchSize: number): Workload {
  return uploadWorkload('chunked-checksum', `${formatSize(size)} in ${formatSize(patchSize)} PATCHes, Upload-Checksum: sha256`, size, patchSize, [THROUGHPUT, CPU_PER_GIB], 200, true);
}

export function memoryWorkload(size: number): Workload {
  return uploadWorkload(
    'memory',
    `peak RSS, ${formatSize(size)} in one PATCH`,
    size,
    size,
    [
      { key: 'vmHwmMiB', label: 'peak RSS MiB', unit: 'MiB', higherIsBetter: false, digits: 0 },
      { key: 'lateRssGrowthMiB', label: 'RSS growth, last vs first quarter, MiB', unit: 'MiB', higherIsBetter: false, digits: 0, ratios: false },
    ],
    350,
  );
}
