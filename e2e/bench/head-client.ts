/**
 * A HEAD load generator cheap enough not to be the bottleneck at tens of thousands of
 * requests per second on two cores: one raw keep-alive TCP connection per target, one request
 * in flight on each (no pipelining), a pre-built request buffer, and a response parser that
 * only looks for the status line and the blank line (a HEAD answer has no body).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export type HeadLoad = Readonly<{
  requests: number;
  errors: number;
  /** Latency of every request completed inside the window, in ms. */
  latenciesMs: Float64Array;
  elapsedMs: number;
}>;

type Connection = { socket: net.Socket; sentAt: number; pending: string; request: Buffer; path: string };

/**
 * Runs one connection per path in `paths` for `warmupMs + durationMs`; counts only what
 * completes in the last `durationMs`. `onWindow(true|false)` is called when the window opens
 * and closes, so the caller can read CPU counters exactly around it.
 */
export async function headLoad(base: string, paths: readonly string[], warmupMs: number, durationMs: number, onWindow: (open: boolean) => void): Promise<HeadLoad> {
  const { hostname, port } = new URL(base);
  const latencies: number[] = [];
  let requests = 0;
  let errors = 0;
  let inWindow = false;
  let stopping = false;
  let failure: Error | undefined;
  const connections: Connection[] = [];

  const send = (c: Connection) => {
    c.sentAt = performance.now();
    c.socket.write(c.request);
  };
  const open = (path: string): Promise<Connection> =>
    new Promise((resolve, reject) => {
      const request = Buffer.from(`HEAD ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nTus-Resumable: 1.0.0\r\n\r\n`, 'latin1');
      const socket = net.connect({ host: hostname, port: Number(port), noDelay: true });
      const c: Connection = { socket, sentAt: 0, pending: '', request, path };
      socket.setEncoding('latin1');
      socket.once('connect', () => resolve(c));
      socket.once('error', (error) => {
        if (!stopping) failure ??= error;
        reject(error);
      });
      socket.on('data', (text: string) => {
        c.pending += text;
        for (let end = c.pending.indexOf('\r\n\r\n'); end >= 0; end = c.pending.indexOf('\r\n\r\n')) {
          const head = c.pending.slice(0, end);
          c.pending = c.pending.slice(end + 4);
          const now = performance.now();
          if (!head.startsWith('HTTP/1.1 200')) {
            errors++;
            failure ??= new Error(`HEAD ${path} answered ${head.split('\r\n', 1)[0]}`);
          } else if (inWindow) {
            requests++;
            latencies.push(now - c.sentAt);
          }
          if (!stopping && !failure) send(c);
        }
      });
      socket.on('close', () => {
        // The server closed a keep-alive connection: reconnect and go on.
        if (stopping || failure) return;
        const i = connections.indexOf(c);
        void open(path).then((fresh) => {
          if (i >= 0) connections[i] = fresh;
          send(fresh);
        }, () => undefined);
      });
    });

  try {
    connections.push(...(await Promise.all(paths.map(open))));
    for (const c of connections) send(c);
    await new Promise((resolve) => setTimeout(resolve, warmupMs));
    if (failure) throw failure;
    onWindow(true);
    inWindow = true;
    const windowStart = performance.now();
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    inWindow = false;
    const elapsedMs = performance.now() - windowStart;
    onWindow(false);
    if (failure) throw failure;
    return { requests, errors, latenciesMs: Float64Array.from(latencies), elapsedMs };
  } finally {
    stopping = true;
    for (const c of connections) c.socket.destroy();
  }
}
