import fs from 'node:fs/promises';
import path from 'node:path';
import { pollUntil, sleep, withTimeout } from './server-process.js';

/** Helpers for the status resource (`/uploads/<id>`), its events, and the records behind it. */

export type ProcessorOutcome = Readonly<{ ok: boolean; result?: unknown; error?: string; at: string }>;

/** What `GET /uploads/<id>` answers. */
export type UploadStatus = Readonly<{
  id: string;
  state: 'uploading' | 'processing' | 'done' | 'failed' | 'rejected';
  offset: number | null;
  length: number | null;
  metadata: Record<string, string>;
  processors: Readonly<Record<string, ProcessorOutcome>>;
  error: string | null;
  uploadUrl: string;
  updatedAt: string | null;
}>;

/** What the server keeps in `STORAGE_DIR/.status/<id>.json`. */
export type StatusFile = Readonly<{ id: string; state: string; processors: Readonly<Record<string, ProcessorOutcome>>; error: string | null; updatedAt: string }>;

export const SETTLED: readonly UploadStatus['state'][] = ['done', 'failed', 'rejected'];

/** The upload id at the end of an upload URL. */
export function uploadIdOf(uploadUrl: string): string {
  const id = new URL(uploadUrl).pathname.split('/').pop();
  if (!id) throw new Error(`no upload id in ${uploadUrl}`);
  return id;
}

export async function getStatus(baseUrl: string, id: string, timeoutMs = 10_000): Promise<{ status: number; body: UploadStatus | undefined; headers: Headers; text: string }> {
  const response = await fetch(`${baseUrl}/uploads/${id}`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  const json = response.headers.get('content-type')?.startsWith('application/json') ? (JSON.parse(text) as UploadStatus) : undefined;
  return { status: response.status, body: response.status === 200 ? json : undefined, headers: response.headers, text };
}

/** Polls `GET /uploads/<id>` every `intervalMs` until its state is one of `states` (bounded). */
export async function waitForState(baseUrl: string, id: string, states: readonly UploadStatus['state'][] = SETTLED, timeoutMs = 60_000, intervalMs = 50): Promise<UploadStatus> {
  let last: UploadStatus | undefined;
  try {
    return await pollUntil(
      async () => {
        const { body } = await getStatus(baseUrl, id);
        last = body;
        return body && states.includes(body.state) ? body : undefined;
      },
      `upload ${id} to be ${states.join(' or ')}`,
      timeoutMs,
      intervalMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last)}`, { cause: error });
  }
}

/** The status record on disk, or undefined when there is none (yet). */
export async function readStatusFile(storageDir: string, id: string): Promise<StatusFile | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(storageDir, '.status', `${id}.json`), 'utf8')) as StatusFile;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Which queue state (pending, done, dead) holds the processing job of an upload, on disk: the
 * queue's journal (`.queue/journal/`, batches after the latest snapshot) replayed for its key.
 */
export async function processingJobState(storageDir: string, id: string): Promise<'pending' | 'done' | 'dead' | undefined> {
  const key = `process:${id}`;
  const dir = path.join(storageDir, '.queue', 'journal');
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((name) => /^\d{12}\.(batch|snapshot|log)\.jsonl$/.test(name)).sort();
  const latestSnapshot = names.filter((name) => name.includes('.snapshot.')).at(-1);
  let state: 'pending' | 'done' | 'dead' | undefined;
  for (const name of latestSnapshot ? names.slice(names.indexOf(latestSnapshot)) : names) {
    const text = await fs.readFile(path.join(dir, name), 'utf8').catch(() => '');
    for (const line of text.split('\n').filter(Boolean)) {
      let record: { t: string; key?: string; job?: { key: string } };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        continue; // a log's torn last line (a killed server): the queue skips it too
      }
      if (record.t === 'job' && record.job?.key === key && state === undefined) state = 'pending';
      else if ((record.t === 'done' || record.t === 'dead') && record.key === key) state = record.t;
    }
  }
  return state;
}

/**
 * Waits (bounded) until the processing job of an upload is in `state` on disk. The queue files
 * a job under done/ or dead/ just after the status record settles, so a client that saw the
 * status settle may still find the job pending for a moment.
 */
export async function waitForJobState(storageDir: string, id: string, state: 'pending' | 'done' | 'dead', timeoutMs = 10_000): Promise<void> {
  await pollUntil(async () => ((await processingJobState(storageDir, id)) === state ? true : undefined), `the processing job of ${id} to be ${state}`, timeoutMs, 20);
}

export type ServerSentEvent = Readonly<{ event: string; data: string }>;

/**
 * A client of `GET /uploads/<id>/events`: collects every event as it arrives. Bounded: the
 * request is aborted after `timeoutMs` or on close().
 */
export class EventStreamClient {
  readonly events: ServerSentEvent[] = [];
  /** Settles when the server ends the stream (or it is aborted). */
  readonly ended: Promise<void>;
  private constructor(
    private readonly controller: AbortController,
    readonly status: number,
    readonly contentType: string | null,
    body: ReadableStream<Uint8Array> | null,
  ) {
    this.ended = this.pump(body);
  }

  static async open(url: string, timeoutMs = 60_000): Promise<EventStreamClient> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`event stream still open after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    const response = await fetch(url, { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
    return new EventStreamClient(controller, response.status, response.headers.get('content-type'), response.body);
  }

  private async pump(body: ReadableStream<Uint8Array> | null): Promise<void> {
    if (!body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n/g, '\n');
        let end = buffer.indexOf('\n\n');
        for (let i = 0; end !== -1 && i < 10_000; i += 1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length > 0) this.events.push({ event, data: data.join('\n') });
          end = buffer.indexOf('\n\n');
        }
      }
    } catch {
      // aborted: the events so far stay
    }
  }

  /** The `status` events' payloads so far. */
  statuses(): UploadStatus[] {
    return this.events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data) as UploadStatus);
  }

  /** Waits (bounded) until at least `count` status events arrived. */
  async waitForStatuses(count: number, timeoutMs = 30_000): Promise<UploadStatus[]> {
    return pollUntil(() => (this.statuses().length >= count ? this.statuses() : undefined), `${count} status event(s)`, timeoutMs, 10);
  }

  /** Waits (bounded) for the server to end the stream. */
  async waitForEnd(timeoutMs = 60_000): Promise<void> {
    await withTimeout(this.ended, timeoutMs, 'the server to end the event stream');
  }

  close(): void {
    this.controller.abort();
  }
}

// ---------------------------------------------------------------------------------------------
// Freezing a process: SIGSTOP, look at what it left on disk, then SIGCONT or SIGKILL.

/** The scheduler state of every thread of a process (R, S, D, T...), from /proc. */
async function threadStates(pid: number): Promise<string[]> {
  const tasks = await fs.readdir(`/proc/${pid}/task`);
  const states: string[] = [];
  for (const task of tasks) {
    try {
      const stat = await fs.readFile(`/proc/${pid}/task/${task}/stat`, 'utf8');
      // "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ")".
      states.push(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
    } catch {
      // the thread exited meanwhile
    }
  }
  return states;
}

/**
 * Stops a process with SIGSTOP and waits (bounded) until every one of its threads, the libuv
 * pool included, is stopped: from then on nothing it does can change the disk until SIGCONT.
 */
export async function freeze(pid: number, timeoutMs = 5_000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await pollUntil(async () => ((await threadStates(pid)).every((s) => s === 'T' || s === 't') ? true : undefined), `process ${pid} to stop`, timeoutMs, 1);
}

export function thaw(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * Runs a frozen process in slices of `sliceMs` and looks at it between them (while frozen)
 * until `check` returns a value; the process is frozen when this resolves. A moment that
 * lasts longer than one slice cannot be stepped over, so this catches the process in it
 * deterministically. Bounded in steps and in time.
 */
export async function stepUntil<T>(pid: number, check: () => Promise<T | undefined>, { sliceMs = 2, maxSteps = 5_000, timeoutMs = 60_000 } = {}): Promise<{ value: T; steps: number }> {
  const deadline = Date.now() + timeoutMs;
  for (let steps = 0; steps < maxSteps && Date.now() < deadline; steps += 1) {
    const value = await check();
    if (value !== undefined) return { value, steps };
    thaw(pid);
    await sleep(sliceMs);
    await freeze(pid);
  }
  throw new Error(`stepping process ${pid}: the awaited moment did not come within ${maxSteps} steps or ${timeoutMs} ms`);
}
