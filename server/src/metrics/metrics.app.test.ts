import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import { createTestApp, type TestApp } from '../testing/create-test-app.js';
import { advanceClock, createUpload, OFFSET_STREAM, patchUpload, TUS, waitFor } from '../testing/http-test-helpers.js';
import { parseSamples, sampleValue, type Sample } from './prometheus-text.js';

const HOUR = 3_600_000;

async function scrape(t: TestApp, headers: Record<string, string> = {}): Promise<Sample[]> {
  const res = await t.app.request('/metrics', { headers });
  expect(res.status).toBe(200);
  return parseSamples(await res.text());
}

/** The change of each named sample between two scrapes. */
function delta(before: readonly Sample[], after: readonly Sample[]) {
  return (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
}

describe('GET /metrics', () => {
  let t: TestApp;
  const opened: TestApp[] = [];

  beforeAll(async () => {
    t = await createTestApp();
    await t.startBackground();
  });
  afterAll(() => t?.cleanup());
  afterEach(async () => {
    for (const app of opened.splice(0)) await app.cleanup();
  });

  it('answers the Prometheus text format with every tus metric and the process metrics', async () => {
    const res = await t.app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    for (const [name, type] of [
      ['tus_requests_total', 'counter'],
      ['tus_request_duration_seconds', 'histogram'],
      ['tus_bytes_received_total', 'counter'],
      ['tus_uploads_created_total', 'counter'],
      ['tus_uploads_finished_total', 'counter'],
      ['tus_uploads_terminated_total', 'counter'],
      ['tus_uploads_expired_total', 'counter'],
      ['tus_uploads_in_progress', 'gauge'],
      ['tus_hook_invocations_total', 'counter'],
      ['tus_hook_errors_total', 'counter'],
      ['tus_processing_jobs_total', 'counter'],
      ['tus_processing_duration_seconds', 'histogram'],
      ['tus_lock_wait_seconds', 'histogram'],
      ['tus_s3_request_duration_seconds', 'histogram'],
      ['tus_rate_limited_total', 'counter'],
      ['process_cpu_user_seconds_total', 'counter'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
    ]) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
      expect(text, name).toContain(`# TYPE ${name} ${type}\n`);
    }
  });

  it('counts a creation and an upload in two PATCHes: requests by method and status, bytes, created, finished, processing, lock waits', async () => {
    const before = await scrape(t);
    const { path, id } = await createUpload(t.app, { 'Upload-Length': '11' });
    expect((await patchUpload(t.app, path, 0, 'hello ')).status).toBe(204);
    expect((await patchUpload(t.app, path, 6, 'world')).status).toBe(204);
    await waitFor(async () => ((await (await t.app.request(`/uploads/${id}`)).json()) as { state?: string }).state === 'done', { timeoutMs: 10_000 });
    // Processing counts its end state just after it records it: give it the moment in between.
    let after: Sample[] = [];
    await waitFor(async () => {
      after = await scrape(t);
      return delta(before, after)('tus_processing_jobs_total', { state: 'done' }) === 1;
    });
    const change = delta(before, after);

    expect(change('tus_requests_total', { method: 'POST', status: '201' })).toBe(1);
    expect(change('tus_requests_total', { method: 'PATCH', status: '204' })).toBe(2);
    expect(change('tus_request_duration_seconds_count', { method: 'PATCH' })).toBe(2);
    expect(change('tus_bytes_received_total')).toBe(11);
    expect(change('tus_uploads_created_total')).toBe(1);
    expect(change('tus_uploads_finished_total')).toBe(1);
    expect(change('tus_uploads_terminated_total')).toBe(0);
    expect(change('tus_processing_jobs_total', { state: 'done' })).toBe(1);
    expect(change('tus_processing_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    // Each PATCH took the upload's lock once.
    expect(change('tus_lock_wait_seconds_count', { outcome: 'acquired' })).toBeGreaterThanOrEqual(2);
    // The scrapes themselves are requests too.
    expect(change('tus_requests_total', { method: 'GET', status: '200' })).toBeGreaterThanOrEqual(1);
  });

  it('counts a termination', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Length': '10' });
    expect((await patchUpload(t.app, path, 0, 'abc')).status).toBe(204);
    const before = await scrape(t);
    expect((await t.app.request(path, { method: 'DELETE', headers: TUS })).status).toBe(204);
    const change = delta(before, await scrape(t));
    expect(change('tus_uploads_terminated_total')).toBe(1);
    expect(change('tus_requests_total', { method: 'DELETE', status: '204' })).toBe(1);
  });

  it('counts an expiry by the sweep', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Length': '10' });
    expect((await patchUpload(t.app, path, 0, 'abc')).status).toBe(204);
    advanceClock(25 * HOUR);
    const before = await scrape(t);
    expect(await t.sweeper.sweepOnce()).toBe(1);
    const change = delta(before, await scrape(t));
    expect(change('tus_uploads_expired_total')).toBe(1);
    expect(change('tus_lock_wait_seconds_count', { outcome: 'acquired' })).toBe(1);
  });

  it('counts a hook that fails, by hook name', async () => {
    const hooked = await createTestApp({}, {
      hooks: {
        'pre-create': () => {
          throw new Error('the hook broke');
        },
      },
    });
    opened.push(hooked);
    const res = await hooked.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '5' } });
    expect(res.status).toBe(500);
    const samples = await scrape(hooked);
    expect(sampleValue(samples, 'tus_hook_invocations_total', { hook: 'pre-create' })).toBe(1);
    expect(sampleValue(samples, 'tus_hook_errors_total', { hook: 'pre-create' })).toBe(1);
    expect(sampleValue(samples, 'tus_requests_total', { method: 'POST', status: '500' })).toBe(1);
    expect(sampleValue(samples, 'tus_uploads_created_total')).toBe(0);
  });

  it('shows the upload bodies streaming in right now as tus_uploads_in_progress', async () => {
    const { path } = await createUpload(t.app, { 'Upload-Length': '10' });
    let push!: (chunk: Uint8Array | null) => void;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (chunk) => (chunk ? controller.enqueue(chunk) : controller.close());
      },
    });
    const patch = Promise.resolve(
      t.app.request(path, {
        method: 'PATCH',
        headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': OFFSET_STREAM, 'Content-Length': '4' },
        body,
        duplex: 'half',
      } as RequestInit),
    );
    push(new Uint8Array([1, 2]));
    let during = 0;
    await waitFor(async () => {
      during = sampleValue(await scrape(t), 'tus_uploads_in_progress');
      return during === 1;
    });
    expect(during).toBe(1);
    push(new Uint8Array([3, 4]));
    push(null);
    expect((await patch).status).toBe(204);
    expect(sampleValue(await scrape(t), 'tus_uploads_in_progress')).toBe(0);
  });

  it('never puts an upload id, a path or a client-chosen method in a label', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i += 1) {
      const { path, id } = await createUpload(t.app, { 'Upload-Length': '3' });
      ids.push(id);
      await patchUpload(t.app, path, 0, 'abc');
      await t.app.request(`${path}?access_token=secret-${id}`, { method: 'HEAD', headers: TUS });
    }
    await t.app.request(`/files/${randomBytes(16).toString('hex')}`, { method: 'FROBNICATE', headers: TUS });
    const samples = await scrape(t);
    const values = samples.flatMap((s) => Object.values(s.labels));
    for (const id of ids) expect(values.filter((value) => value.includes(id))).toEqual([]);
    expect(values.filter((value) => value.includes('/'))).toEqual([]);
    expect(values).not.toContain('FROBNICATE');
    expect(sampleValue(samples, 'tus_requests_total', { method: 'OTHER' })).toBeGreaterThanOrEqual(1);
    const methods = new Set(samples.filter((s) => s.name === 'tus_requests_total').map((s) => s.labels.method));
    expect([...methods].every((m) => ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS', 'PUT', 'OTHER'].includes(m ?? ''))).toBe(true);
  });

  it('counts a request refused by a per-subject limit, by the limit\'s name', async () => {
    const limited = await createTestApp({ MAX_CREATIONS_PER_MINUTE: '1' });
    opened.push(limited);
    await createUpload(limited.app, { 'Upload-Length': '1' });
    const refused = await limited.app.request('/files', { method: 'POST', headers: { ...TUS, 'Upload-Length': '1' } });
    expect(refused.status).toBe(429);
    const samples = await scrape(limited);
    expect(sampleValue(samples, 'tus_rate_limited_total', { limit: 'creations-per-minute' })).toBe(1);
    expect(sampleValue(samples, 'tus_requests_total', { method: 'POST', status: '429' })).toBe(1);
    expect(sampleValue(samples, 'tus_uploads_created_total')).toBe(1);
  });

  it('keeps each app\'s counters apart (one registry per app)', async () => {
    const other = await createTestApp();
    opened.push(other);
    await createUpload(other.app, { 'Upload-Length': '1' });
    expect(sampleValue(await scrape(other), 'tus_uploads_created_total')).toBe(1);
    const fresh = await createTestApp();
    opened.push(fresh);
    expect(sampleValue(await scrape(fresh), 'tus_uploads_created_total')).toBe(0);
  });
});

describe('METRICS_TOKEN', () => {
  const TOKEN = 'metrics-token-0123456789abcdef';
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ METRICS_TOKEN: TOKEN });
  });
  afterAll(() => t?.cleanup());

  it('needs Authorization: Bearer <METRICS_TOKEN> when set', async () => {
    const missing = await t.app.request('/metrics');
    expect(missing.status).toBe(401);
    expect(await missing.text()).toMatch(/^ERR_UNAUTHORIZED: /);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
    for (const wrong of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
      expect((await t.app.request('/metrics', { headers: { Authorization: wrong } })).status, wrong).toBe(401);
    }
    const ok = await t.app.request('/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('# TYPE tus_requests_total counter');
  });

  it('is a setting of 16 characters or more', () => {
    expect(() => parseConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: expected a token of at least 16 characters/);
    expect(parseConfig({ METRICS_TOKEN: TOKEN }).metrics.token).toBe(TOKEN);
    expect(parseConfig({}).metrics.token).toBeUndefined();
  });

  it('is not behind the uploads\' authentication, and answers while draining', async () => {
    const authed = await createTestApp({ AUTH_JWT_SECRET: 'app-test-secret-that-is-long-enough-0123456789' });
    try {
      expect((await authed.app.request('/metrics')).status).toBe(200);
      authed.lifecycle.beginShutdown();
      expect((await authed.app.request('/metrics')).status).toBe(200);
    } finally {
      await authed.cleanup();
    }
  });
});
