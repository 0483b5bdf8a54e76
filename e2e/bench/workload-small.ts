/**
 * Many small uploads, each one POST carrying all its bytes (creation-with-upload), `inFlight`
 * at a time over keep-alive connections. Uploads/s is what the client sees; server CPU per
 * upload is read around that window. This server (A, and its --extra variants) keeps
 * processing on (that is the point), so after the window the bench waits, apart, for its
 * processing queue to drain: until every upload's status (GET /uploads/<id>) is final.
 */
import type http from 'node:http';
import { createUpload, keepAlive, request } from './http-client.js';
import { formatSize, percentile, round1, sleep } from './units.js';
import type { RunContext, Workload } from './workload-types.js';

const FINAL_STATES = new Set(['done', 'failed', 'rejected']);

async function stateOf(ctx: RunContext, agent: http.Agent, id: string): Promise<string> {
  const reply = await request(agent, `${ctx.server.url}/uploads/${id}`, 'GET', {}, 0, ctx.signal);
  return reply.status === 200 ? ((JSON.parse(reply.body) as { state?: string }).state ?? '?') : `HTTP ${reply.status}`;
}

/**
 * Milliseconds until A's processing has caught up with every upload, bounded by the run's
 * signal: the queue runs roughly in order, so the last upload is polled until its status is
 * final; then every other upload is checked once, and any still in progress polled until it is.
 */
async function drain(ctx: RunContext, ids: readonly string[]): Promise<{ drainMs: number; states: Record<string, number> }> {
  const started = performance.now();
  const agent = keepAlive(4);
  let drainedAt = started;
  const waitFinal = async (id: string): Promise<string> => {
    for (let checked = false; ; checked = true) {
      const state = await stateOf(ctx, agent, id);
      if (FINAL_STATES.has(state)) {
        if (checked) drainedAt = Math.max(drainedAt, performance.now());
        return state;
      }
      await sleep(50);
    }
  };
  try {
    await waitFinal(ids.at(-1)!);
    drainedAt = Math.max(drainedAt, performance.now());
    const states: Record<string, number> = {};
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < ids.length) {
          const state = await waitFinal(ids[next++]!);
          states[state] = (states[state] ?? 0) + 1;
        }
      }),
    );
    return { drainMs: Math.round(drainedAt - started), states };
  } finally {
    agent.destroy();
  }
}

export function smallWorkload(count: number, size: number, inFlight: number): Workload {
  return {
    name: 'small',
    title: `${count} × ${formatSize(size)} creation-with-upload, ${inFlight} in flight`,
    storages: ['file'],
    metrics: [
      { key: 'uploadsPerSec', label: 'uploads/s', unit: '/s', higherIsBetter: true, digits: 0 },
      { key: 'cpuMsPerOp', label: 'server CPU ms per upload', unit: 'ms', higherIsBetter: false, digits: 2 },
      { key: 'drainMs', label: 'processing drained after (ms)', unit: 'ms', higherIsBetter: false, digits: 0 },
    ],
    estimateSec: count / 500,
    diskBytes: count * (size + 8192),
    async run(ctx) {
      const agent = keepAlive(inFlight);
      try {
        const ids: string[] = [];
        const latencies: number[] = [];
        let next = 0;
        ctx.meter.begin();
        const started = performance.now();
        await Promise.all(
          Array.from({ length: inFlight }, async () => {
            while (next < count) {
              next++;
              const t0 = performance.now();
              const { uploadId } = await createUpload(agent, ctx.server.url, size, ctx.signal, size);
              latencies.push(performance.now() - t0);
              ids.push(uploadId);
            }
          }),
        );
        const elapsedMs = performance.now() - started;
        ctx.meter.end();
        const { drainMs, states } = ctx.spec.role === 'A' || ctx.spec.role === 'X' ? await drain(ctx, ids) : { drainMs: null, states: null };
        if (ctx.spec.storage === 'file') {
          for (const id of ids) {
            const stored = await ctx.storedSize(id);
            if (stored !== size) throw new Error(`server ${ctx.spec.name} stored ${stored ?? 'no'} bytes of ${id}, expected ${size}`);
          }
        }
        return {
          metrics: { uploadsPerSec: round1(count / (elapsedMs / 1000)), drainMs },
          ops: count, opsUnit: 'requests',
          detail: { count, sizeBytes: size, inFlight, elapsedMs: Math.round(elapsedMs), p50Ms: round1(percentile(latencies, 50)), p99Ms: round1(percentile(latencies, 99)), processed: states },
        };
      } finally {
        agent.destroy();
      }
    },
  };
}
