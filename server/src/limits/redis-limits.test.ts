import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connections, deletePrefix, redisUrl, testPrefix } from '../redis/test-redis.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { createUpload, TUS } from '../testing/http-test-helpers.js';
import { createRedisLimitCounters } from './redis-limit-counters.js';

/**
 * Two app instances counting on one Redis, as REDIS_URL wires them: a subject's limits hold
 * across instances, so a client cannot multiply them by spreading its requests.
 */
describe.skipIf(!redisUrl)('limits shared by two instances on Redis', () => {
  const conns = connections();
  const apps: TestApp[] = [];
  let prefix = '';
  let storageDir = '';

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((t) => t.cleanup()));
    await deletePrefix(conns.connect(), prefix);
    await conns.closeAll();
    await fs.rm(storageDir, { recursive: true, force: true });
  });

  async function pair(env: Record<string, string>): Promise<[TestApp, TestApp]> {
    prefix = testPrefix('limits-app');
    // One storage directory, as instances behind one load balancer share one store.
    storageDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tus-limits-'));
    const made: TestApp[] = [];
    for (let i = 0; i < 2; i += 1) {
      const t = await createTestApp(
        { STORAGE_DIR: storageDir, MAX_UPLOADS_IN_PROGRESS: '0', MAX_CREATIONS_PER_MINUTE: '0', MAX_UNFINISHED_BYTES: '0', MAX_EVENT_STREAMS: '0', ...env },
        { limitCounters: createRedisLimitCounters({ redis: conns.connect(), prefix }) },
      );
      apps.push(t);
      made.push(t);
    }
    return [made[0]!, made[1]!];
  }

  const post = (t: TestApp, length: number) =>
    Promise.resolve(t.app.request('http://localhost/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': String(length) } }));

  it('uploads in progress: two on A and B, the third on either is refused; a DELETE on B frees A', async () => {
    const [a, b] = await pair({ MAX_UPLOADS_IN_PROGRESS: '2' });
    const first = await createUpload(a.app, { 'Upload-Length': '5' });
    expect((await post(b, 5)).status).toBe(201);
    const refused = await post(a, 5);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.text()).toMatch(/^ERR_RATE_LIMITED: uploads-in-progress: /);
    expect((await post(b, 5)).status).toBe(429);
    // A termination through the other instance releases the count both see.
    const deleted = await b.app.request(first.path, { method: 'DELETE', headers: TUS });
    expect(deleted.status).toBe(204);
    expect((await post(b, 5)).status).toBe(201);
  });

  it('creations per minute are counted once across instances', async () => {
    const [a, b] = await pair({ MAX_CREATIONS_PER_MINUTE: '4' });
    for (let round = 0; round < 2; round += 1) {
      const minute = Math.floor(Date.now() / 60_000);
      const statuses = [];
      for (let i = 0; i < 3; i += 1) {
        statuses.push((await post(a, 0)).status);
        statuses.push((await post(b, 0)).status);
      }
      // A run that straddles a minute boundary starts a new window halfway: the next round has a fresh one.
      if (Math.floor(Date.now() / 60_000) !== minute) continue;
      expect(statuses).toEqual([201, 201, 201, 201, 429, 429]);
      return;
    }
    throw new Error('two runs straddled a minute boundary');
  });

  it('event streams: one open on A, a second on B is refused', async () => {
    const [a, b] = await pair({ MAX_EVENT_STREAMS: '1' });
    const { id } = await createUpload(a.app, { 'Upload-Length': '5' });
    const open = await a.app.request(`/uploads/${id}/events`);
    expect(open.status).toBe(200);
    const reader = open.body!.getReader();
    await reader.read();
    const refused = await b.app.request(`/uploads/${id}/events`);
    expect(refused.status).toBe(429);
    expect(await refused.text()).toMatch(/^ERR_RATE_LIMITED: event-streams: /);
    await reader.cancel();
  });
});
