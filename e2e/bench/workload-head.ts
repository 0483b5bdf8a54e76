/**
 * HEAD, the request a client sends to learn where to resume:
 *   head-one     64 connections asking about the same upload (the lock's worst case)
 *   head-spread  64 uploads, one connection each
 * The uploads are created and half-filled before the window (a resumable upload in progress);
 * after a warm-up, requests are counted for a fixed time. Server CPU per HEAD is read around
 * the window. The client (head-client.ts) is raw TCP so it is not the bottleneck.
 */
import { headLoad } from './head-client.js';
import { createUpload, headOffset, keepAlive, patchRange } from './http-client.js';
import { percentile, round1, round2 } from './units.js';
import type { Workload, WorkloadName } from './workload-types.js';

const LENGTH = 1024 * 1024;
const FILLED = LENGTH / 2;

function headWorkload(name: WorkloadName, title: string, uploads: number, connections: number, warmupMs: number, durationMs: number): Workload {
  return {
    name,
    title,
    storages: ['file'],
    metrics: [
      { key: 'reqPerSec', label: 'HEAD/s', unit: '/s', higherIsBetter: true, digits: 0 },
      { key: 'p99Ms', label: 'p99 HEAD latency ms', unit: 'ms', higherIsBetter: false, digits: 1 },
      { key: 'cpuMsPerOp', label: 'server CPU ms per HEAD', unit: 'ms', higherIsBetter: false, digits: 3 },
    ],
    estimateSec: (warmupMs + durationMs) / 1000 + 1,
    diskBytes: uploads * LENGTH,
    async run(ctx) {
      const agent = keepAlive(8);
      let paths: string[];
      try {
        const created = await Promise.all(Array.from({ length: uploads }, () => createUpload(agent, ctx.server.url, LENGTH, ctx.signal)));
        for (const { uploadUrl } of created) {
          await patchRange(agent, uploadUrl, 0, FILLED, FILLED, ctx.signal);
          const offset = await headOffset(agent, uploadUrl, ctx.signal);
          if (offset !== FILLED) throw new Error(`HEAD answered Upload-Offset ${offset}, expected ${FILLED}`);
        }
        paths = Array.from({ length: connections }, (_, i) => new URL(created[i % created.length]!.uploadUrl).pathname);
      } finally {
        agent.destroy();
      }
      const load = await headLoad(ctx.server.url, paths, warmupMs, durationMs, (open) => (open ? ctx.meter.begin() : ctx.meter.end()));
      if (load.requests === 0) throw new Error(`server ${ctx.spec.name} answered no HEAD in ${durationMs} ms`);
      return {
        metrics: { reqPerSec: round1(load.requests / (load.elapsedMs / 1000)), p99Ms: round2(percentile(load.latenciesMs, 99)) },
        ops: load.requests, opsUnit: 'requests',
        detail: { uploads, connections, requests: load.requests, windowMs: Math.round(load.elapsedMs), p50Ms: round2(percentile(load.latenciesMs, 50)) },
      };
    },
  };
}

export function headOneWorkload(connections: number, warmupMs: number, durationMs: number): Workload {
  return headWorkload('head-one', `HEAD, one upload, ${connections} connections`, 1, connections, warmupMs, durationMs);
}

export function headSpreadWorkload(uploads: number, warmupMs: number, durationMs: number): Workload {
  return headWorkload('head-spread', `HEAD, ${uploads} uploads × 1 connection`, uploads, uploads, warmupMs, durationMs);
}
