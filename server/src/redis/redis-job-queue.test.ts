import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { contractOptions, jobQueueContract, latch, newJob, until, within, type ContractQueueOptions } from '../processing/job-queue.contract.js';
import type { Job, JobQueue } from '../processing/job-queue.js';
import { createRedisJobQueue } from './redis-job-queue.js';
import { connections, deletePrefix, redisUrl, testPrefix } from './test-redis.js';

const silent = pino({ level: 'silent' });

describe.skipIf(!redisUrl)('redis job queue', () => {
  // Each backend is a fresh key prefix; each queue instance gets its own connection, as
  // separate server processes would.
  jobQueueContract(
    'redis queue',
    async () => {
      const prefix = testPrefix('queue');
      const conns = connections();
      return {
        open: (options: ContractQueueOptions) => createRedisJobQueue({ redis: conns.connect(), prefix, logger: silent, pollMs: 50, ...options }),
        async destroy() {
          const admin = conns.connect();
          await deletePrefix(admin, prefix);
          await conns.closeAll();
        },
      };
    },
    // Leased: an interrupted job runs again once its lease expires (tested below), not at once.
    { resumesInterruptedJobsAtOnce: false },
  );

  describe('across instances', () => {
    const conns = connections();
    const queues: JobQueue[] = [];
    let prefix = '';
    const open = (options: Partial<Parameters<typeof createRedisJobQueue>[0]> = {}) => {
      const queue = createRedisJobQueue({ redis: conns.connect(), prefix, logger: silent, pollMs: 20, ...contractOptions(), ...options });
      queues.push(queue);
      return queue;
    };

    afterEach(async () => {
      await Promise.all(queues.splice(0).map((q) => within(q.stop(), 'a queue to stop', 2_000).catch(() => undefined)));
      await deletePrefix(conns.connect(), prefix);
      await conns.closeAll();
    });

    it('a job held by a dead instance runs again elsewhere once its lease expires', async () => {
      prefix = testPrefix('lease');
      const redisA = conns.connect();
      const a = createRedisJobQueue({ redis: redisA, prefix, logger: silent, pollMs: 20, leaseMs: 300, ...contractOptions() });
      const started = latch();
      a.start({
        run: () => {
          started.release();
          return new Promise<void>(() => undefined); // never settles: the instance "dies" mid-run
        },
        dead: async () => undefined,
      });
      await a.enqueue(newJob('interrupted', 'g', { n: 1 }));
      await within(started.promise, 'the job to start on A');
      // A dies: its connection drops, so its heartbeats stop and its lease runs out.
      redisA.disconnect();

      const b = open({ leaseMs: 300 });
      const ran: Job[] = [];
      b.start({ run: async (job) => void ran.push(job), dead: async () => undefined });
      await within(b.idle(), 'the interrupted job to run on B');
      expect(ran.map((j) => [j.key, j.attempts, j.payload])).toEqual([['interrupted', 0, { n: 1 }]]);
      expect(await b.status('interrupted')).toBe('done');
    });

    it('a running job keeps its lease past leaseMs while its instance is alive', async () => {
      prefix = testPrefix('heartbeat');
      const a = open({ leaseMs: 150 });
      const b = open({ leaseMs: 150 });
      const gate = latch();
      const runs: string[] = [];
      const handlers = {
        run: async (job: Job) => {
          runs.push(job.key);
          await gate.promise;
        },
        dead: async () => undefined,
      };
      a.start(handlers);
      b.start(handlers);
      await a.enqueue(newJob('long', 'g'));
      await until(() => runs.length === 1, 'the job to start');
      await new Promise((resolve) => setTimeout(resolve, 600)); // four lease lengths
      expect(runs).toEqual(['long']);
      gate.release();
      await within(a.idle(), 'the job to finish');
      expect(runs).toEqual(['long']);
    });

    it('many jobs over three instances: each runs exactly once, groups stay in order and one at a time', async () => {
      prefix = testPrefix('multi');
      const instances = [open(), open(), open()];
      const runs: { key: string; group: string; start: number; end: number }[] = [];
      const active = new Set<string>();
      let overlap = false;
      for (const queue of instances)
        queue.start({
          run: async (job) => {
            if (active.has(job.group)) overlap = true;
            active.add(job.group);
            const start = performance.now();
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
            active.delete(job.group);
            runs.push({ key: job.key, group: job.group, start, end: performance.now() });
          },
          dead: async () => undefined,
        });
      const keys: string[] = [];
      for (let g = 0; g < 6; g += 1)
        for (let i = 0; i < 5; i += 1) {
          const key = `g${g}-j${i}`;
          keys.push(key);
          await instances[(g + i) % 3]!.enqueue(newJob(key, `group-${g}`));
        }
      await within(instances[0]!.idle(), 'all jobs to run', 10_000);
      await Promise.all(instances.map((q) => within(q.idle(), 'every instance to be idle')));
      expect(runs.map((r) => r.key).sort()).toEqual([...keys].sort());
      expect(overlap).toBe(false);
      for (let g = 0; g < 6; g += 1) expect(runs.filter((r) => r.group === `group-${g}`).map((r) => r.key)).toEqual(keys.filter((k) => k.startsWith(`g${g}-`)));
    });
  });
});
