import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { HookEvent } from '../hooks/types.js';
import { encodeMetadata, waitFor } from '../testing/http-test-helpers.js';
import { startTestServer } from '../testing/create-test-app.js';
import { latch } from './job-queue.contract.js';
import { processingKey } from './processing-service.js';
import { sha256 } from './processors/sha256.js';
import type { Processor } from './processors/types.js';

/**
 * Processing through the whole app on a real socket, with processors the test controls
 * (createApp's deps.processors): what a step that blocks or keeps failing does to the
 * final PATCH, the status resource and the post-process hook.
 */

type Server = Awaited<ReturnType<typeof startTestServer>>;
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

const TUS = { 'Tus-Resumable': '1.0.0' };
const content = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(1000));
const contentSha = createHash('sha256').update(content).digest('hex');

/** A step that fails its first `failures` runs with `message`, then succeeds. */
function failing(name: string, failures: number, message: string) {
  const calls: number[] = [];
  const processor: Processor<{ ran: number }> = {
    name,
    async run() {
      calls.push(Date.now());
      if (calls.length <= failures) throw new Error(message);
      return { result: { ran: calls.length } };
    },
  };
  return { processor, calls };
}

async function start(env: Record<string, string>, processors: Processor[], postProcess: HookEvent[] = []): Promise<Server> {
  const server = await startTestServer(env, {
    processors,
    hooks: {
      'post-process': (event) => {
        postProcess.push(event);
      },
    },
  });
  servers.push(server);
  return server;
}

/** POST then one PATCH with every byte, over the socket; returns the id and the final PATCH response. */
async function uploadAll(server: Server): Promise<{ id: string; finalPatch: Response }> {
  const created = await fetch(`${server.running.url}/files/`, {
    method: 'POST',
    headers: { ...TUS, 'Upload-Length': String(content.length), 'Upload-Metadata': encodeMetadata({ filename: 'fox.txt', filetype: 'text/plain' }) },
    signal: AbortSignal.timeout(10_000),
  });
  expect(created.status).toBe(201);
  const location = created.headers.get('location') ?? '';
  const id = location.split('/').pop() ?? '';
  const finalPatch = await fetch(new URL(location, server.running.url), {
    method: 'PATCH',
    headers: { ...TUS, 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream' },
    body: content,
    signal: AbortSignal.timeout(10_000),
  });
  return { id, finalPatch };
}

async function statusOf(server: Server, id: string): Promise<Record<string, unknown> & { state: string; error: string | null; processors: Record<string, { ok: boolean; result?: unknown; error?: string }> }> {
  const response = await fetch(`${server.running.url}/uploads/${id}`, { signal: AbortSignal.timeout(10_000) });
  expect(response.status).toBe(200);
  return (await response.json()) as never;
}

async function settled(server: Server, id: string, timeoutMs = 10_000) {
  let last: Awaited<ReturnType<typeof statusOf>> | undefined;
  await waitFor(
    async () => {
      last = await statusOf(server, id);
      return ['done', 'failed', 'rejected'].includes(last.state);
    },
    { timeoutMs },
  ).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; last status ${JSON.stringify(last)}`, { cause: error });
  });
  return last!;
}

describe('processing in the app', () => {
  it('the final PATCH is answered before processing runs; the status says processing until the steps end', async () => {
    const gate = latch();
    let started = false;
    const blocking: Processor<string> = {
      name: 'thumbnail',
      async run() {
        started = true;
        await gate.promise;
        return { result: 'made' };
      },
    };
    const server = await start({}, [sha256, blocking]);
    const { id, finalPatch } = await uploadAll(server);
    expect(finalPatch.status).toBe(204);
    expect(finalPatch.headers.get('upload-offset')).toBe(String(content.length));
    expect(finalPatch.headers.get('link')).toBe(`</uploads/${id}>; rel="status"`);

    await waitFor(() => started);
    const during = await statusOf(server, id);
    expect(during.state).toBe('processing');
    expect(during.processors.sha256).toMatchObject({ ok: true, result: { sha256: contentSha } });
    expect(during.processors.thumbnail).toBeUndefined();

    gate.release();
    const after = await settled(server, id);
    expect(after.state).toBe('done');
    expect(after.processors.thumbnail).toMatchObject({ ok: true, result: 'made' });
  });

  it('a step that keeps failing ends failed with its reason after PROCESSING_MAX_ATTEMPTS, announced once', async () => {
    const postProcess: HookEvent[] = [];
    const broken = failing('transcode', Infinity, 'ffmpeg exited with code 1');
    const server = await start({ PROCESSING_MAX_ATTEMPTS: '3', PROCESSING_RETRY_DELAY: '20ms' }, [sha256, broken.processor], postProcess);
    const { id, finalPatch } = await uploadAll(server);
    expect(finalPatch.status).toBe(204);

    const status = await settled(server, id);
    expect(status.state).toBe('failed');
    expect(status.error).toBe('processing failed after 3 attempts: ffmpeg exited with code 1');
    expect(status.processors.transcode).toMatchObject({ ok: false, error: 'ffmpeg exited with code 1' });
    // The step that succeeded keeps its result.
    expect(status.processors.sha256).toMatchObject({ ok: true, result: { sha256: contentSha } });
    expect(broken.calls).toHaveLength(3);
    // Retried with backoff: each retry no sooner than its delay (20 ms, then 40 ms, less jitter).
    expect(broken.calls[1]! - broken.calls[0]!).toBeGreaterThanOrEqual(15);
    expect(broken.calls[2]! - broken.calls[1]!).toBeGreaterThanOrEqual(31);

    await waitFor(() => postProcess.length > 0);
    // The queue files the job as dead just after dead() settled the status.
    await server.state.queue.idle();
    expect(await server.state.queue.status(processingKey(id))).toBe('dead');
    expect(postProcess.map((e) => e.processing)).toEqual([{ state: 'failed', error: status.error, results: { sha256: { sha256: contentSha, bytes: content.length }, transcode: { error: 'ffmpeg exited with code 1' } } }]);
    expect(postProcess[0]?.upload).toMatchObject({ id, size: content.length, offset: content.length, metadata: { filename: 'fox.txt', filetype: 'text/plain' } });

    // A HEAD on the failed upload does not start it again.
    const headed = await fetch(`${server.running.url}/files/${id}`, { method: 'HEAD', headers: TUS, signal: AbortSignal.timeout(10_000) });
    expect(headed.headers.get('link')).toBe(`</uploads/${id}>; rel="status"`);
    await server.state.queue.idle();
    expect(broken.calls).toHaveLength(3);
    expect((await statusOf(server, id)).state).toBe('failed');
  });

  it('a step that fails fewer times than the attempts allow ends done', async () => {
    const postProcess: HookEvent[] = [];
    const flaky = failing('transcode', 2, 'temporarily out of disk');
    const server = await start({ PROCESSING_MAX_ATTEMPTS: '3', PROCESSING_RETRY_DELAY: '20ms' }, [sha256, flaky.processor], postProcess);
    const { id } = await uploadAll(server);
    const status = await settled(server, id);
    expect(status.state).toBe('done');
    expect(status.error).toBeNull();
    expect(status.processors.transcode).toMatchObject({ ok: true, result: { ran: 3 } });
    expect(flaky.calls).toHaveLength(3);
    await waitFor(() => postProcess.length > 0);
    expect(postProcess.map((e) => e.processing?.state)).toEqual(['done']);
  });

  it('a terminated upload loses its status; its queued processing is skipped', async () => {
    const gate = latch();
    const blocking: Processor<null> = { name: 'slow', run: async () => (await gate.promise, { result: null }) };
    // One at a time: the second upload's processing waits behind the first's.
    const server = await start({ PROCESSING_CONCURRENCY: '1' }, [blocking]);
    const first = await uploadAll(server);
    const second = await uploadAll(server);
    const deleted = await fetch(`${server.running.url}/files/${second.id}`, { method: 'DELETE', headers: TUS, signal: AbortSignal.timeout(10_000) });
    expect(deleted.status).toBe(204);
    gate.release();
    expect((await settled(server, first.id)).state).toBe('done');
    await server.state.queue.idle();
    expect(await server.state.queue.status(processingKey(second.id))).toBe('done');
    const gone = await fetch(`${server.running.url}/uploads/${second.id}`, { signal: AbortSignal.timeout(10_000) });
    expect(gone.status).toBe(404);
  });

  it('an upload terminated while its processing runs leaves no status behind and is not announced', async () => {
    const gate = latch();
    let started = false;
    const blocking: Processor<null> = {
      name: 'slow',
      run: async () => {
        started = true;
        await gate.promise;
        return { result: null };
      },
    };
    const postProcess: HookEvent[] = [];
    const server = await start({}, [sha256, blocking], postProcess);
    const { id } = await uploadAll(server);
    await waitFor(() => started);
    const deleted = await fetch(`${server.running.url}/files/${id}`, { method: 'DELETE', headers: TUS, signal: AbortSignal.timeout(10_000) });
    expect(deleted.status).toBe(204);
    const statusCode = async () => (await fetch(`${server.running.url}/uploads/${id}`, { signal: AbortSignal.timeout(10_000) })).status;
    await waitFor(async () => (await statusCode()) === 404);

    // The step in flight finishes after the upload is gone: nothing may bring its status back.
    gate.release();
    await server.state.queue.idle();
    expect(await statusCode()).toBe(404);
    expect(await server.state.statuses.get(id)).toBeUndefined();
    expect(postProcess).toEqual([]);
  });
});
