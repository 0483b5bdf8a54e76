/**
 * parallel: one upload sent as `parts` partial uploads at once (tus concatenation, what
 * tus-js-client's parallelUploads does), each in PATCHes over its own socket, then the final
 * upload: timed from the first PATCH to the final request's 201. Ours only (plain @tus/server
 * has no concatenation); compare with `chunked` (one connection) in the same run.
 */
import { patchRange, keepAlive, request, TUS_HEADERS } from './http-client.js';
import { formatSize, MiB, round1 } from './units.js';
import type { Metric, Workload } from './workload-types.js';

const THROUGHPUT: Metric = { key: 'mibPerSec', label: 'MiB/s', unit: 'MiB/s', higherIsBetter: true, digits: 0 };
const CPU_PER_GIB: Metric = { key: 'cpuSecPerGiB', label: 'server CPU s/GiB', unit: 's/GiB', higherIsBetter: false, digits: 2 };

export function parallelWorkload(size: number, parts: number, patchSize: number): Workload {
  return {
    name: 'parallel',
    title: `${formatSize(size)} as ${parts} partial uploads at once in ${formatSize(patchSize)} PATCHes, then the final upload`,
    storages: ['file', 's3'],
    roles: ['A', 'X'],
    metrics: [THROUGHPUT, CPU_PER_GIB],
    estimateSec: size / MiB / 300,
    // The partials and the final upload, until the partials are removed.
    diskBytes: 2 * size,
    async run(ctx) {
      const agent = keepAlive(parts);
      try {
        const pieces = Array.from({ length: parts }, (_, i) => Math.floor(size / parts) + (i < size % parts ? 1 : 0));
        const urls: string[] = [];
        for (const length of pieces) {
          const reply = await request(agent, `${ctx.server.url}/files`, 'POST', { ...TUS_HEADERS, 'Upload-Length': String(length), 'Upload-Concat': 'partial' }, 0, ctx.signal);
          if (reply.status !== 201 || !reply.headers.location) throw new Error(`partial POST answered ${reply.status}: ${reply.body}`);
          urls.push(new URL(reply.headers.location, ctx.server.url).href);
        }
        ctx.meter.begin();
        const started = performance.now();
        const patches = await Promise.all(urls.map((url, i) => patchRange(agent, url, 0, pieces[i] ?? 0, patchSize, ctx.signal)));
        const final = await request(agent, `${ctx.server.url}/files`, 'POST', { ...TUS_HEADERS, 'Upload-Concat': `final;${urls.map((url) => new URL(url).pathname).join(' ')}` }, 0, ctx.signal);
        const elapsedMs = performance.now() - started;
        ctx.meter.end();
        if (final.status !== 201 || !final.headers.location) throw new Error(`final POST answered ${final.status}: ${final.body}`);
        const finalId = new URL(final.headers.location, ctx.server.url).pathname.split('/').pop() ?? '';
        const stored = await ctx.storedSize(finalId);
        if (stored !== size) throw new Error(`server ${ctx.spec.name} stored ${stored ?? 'no'} bytes in the final upload, expected ${size}`);
        const mibPerSec = round1(size / MiB / (elapsedMs / 1000));
        return { metrics: { mibPerSec }, ops: size, opsUnit: 'bytes', detail: { sizeBytes: size, parts, patches: patches.reduce((a, b) => a + b, 0), elapsedMs: Math.round(elapsedMs) } };
      } finally {
        agent.destroy();
      }
    },
  };
}
