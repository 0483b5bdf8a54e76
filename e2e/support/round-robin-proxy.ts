import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ProxiedRequest = Readonly<{ method: string; path: string; backend: number; status: number | undefined }>;

export type RoundRobinProxy = Readonly<{
  /** `http://127.0.0.1:PORT`: what the client talks to. */
  url: string;
  /** Every request so far, in arrival order, with the backend (index) that got it. */
  requests(): ProxiedRequest[];
  close(): Promise<void>;
}>;

/**
 * A load balancer without affinity, as small as it can be: each request goes to the next
 * backend in turn, body streamed both ways, Host kept (the servers build upload URLs from
 * it, so they point back at the proxy). When the client goes away the backend request is
 * destroyed too, as nginx does, so a cut connection reaches the server as one.
 */
export async function startRoundRobinProxy(backends: readonly string[]): Promise<RoundRobinProxy> {
  const log: { method: string; path: string; backend: number; status: number | undefined }[] = [];
  const agents = backends.map(() => new http.Agent({ keepAlive: true }));
  let next = 0;
  const server = http.createServer((req, res) => {
    const backend = next;
    next = (next + 1) % backends.length;
    const entry = { method: req.method ?? 'GET', path: req.url ?? '/', backend, status: undefined as number | undefined };
    log.push(entry);
    const target = new URL(req.url ?? '/', backends[backend]);
    const upstream = http.request(target, { method: req.method, headers: req.headers, agent: agents[backend] }, (answer) => {
      entry.status = answer.statusCode;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' }).end('ERR_BAD_GATEWAY: backend unreachable\n');
      else res.destroy();
    });
    req.on('aborted', () => upstream.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => log.map((entry) => ({ ...entry })),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const agent of agents) agent.destroy();
    },
  };
}
