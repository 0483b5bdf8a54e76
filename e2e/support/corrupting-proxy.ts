import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

export type CorruptedRequest = Readonly<{ method: string; path: string; uploadOffset: string | undefined; status: number | undefined; corrupted: boolean }>;

export type CorruptingProxy = Readonly<{
  /** `http://127.0.0.1:PORT`: what the client talks to. */
  url: string;
  /** Every request so far, in arrival order, with the status the backend answered. */
  requests(): CorruptedRequest[];
  close(): Promise<void>;
}>;

export type CorruptingProxyOptions = Readonly<{
  /**
   * Which request body gets one byte flipped, from its method and headers and how many
   * requests came before it. Called once per request; at most one body is ever corrupted.
   */
  corrupt(request: { method: string; headers: http.IncomingHttpHeaders; index: number }): boolean;
  /** The body byte that is flipped (counted from the start of the body). @default 1000 */
  byte?: number;
}>;

/**
 * A flaky link, as small as it can be: an HTTP proxy to one backend that passes everything
 * through, except that it flips one bit of one request body once, keeping its length (a
 * corrupted packet that TCP's checksum missed). Host is kept, so upload URLs point back at
 * the proxy. When the client goes away the backend request is destroyed too.
 */
export async function startCorruptingProxy(backend: string, { corrupt, byte = 1000 }: CorruptingProxyOptions): Promise<CorruptingProxy> {
  const log: { method: string; path: string; uploadOffset: string | undefined; status: number | undefined; corrupted: boolean }[] = [];
  const agent = new http.Agent({ keepAlive: true });
  let done = false;
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const corrupted = !done && corrupt({ method, headers: req.headers, index: log.length });
    if (corrupted) done = true;
    const entry = { method, path: req.url ?? '/', uploadOffset: header(req.headers['upload-offset']), status: undefined as number | undefined, corrupted };
    log.push(entry);
    const upstream = http.request(new URL(req.url ?? '/', backend), { method, headers: req.headers, agent }, (answer) => {
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
    (corrupted ? req.pipe(new FlipByte(byte)) : req).pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => log.map((entry) => ({ ...entry })),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

const header = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** Passes bytes through with the lowest bit of byte `at` inverted. */
class FlipByte extends Transform {
  private seen = 0;

  constructor(private readonly at: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const start = this.seen;
    this.seen += chunk.byteLength;
    if (this.at >= start && this.at < this.seen) {
      const copy = Buffer.from(chunk);
      copy[this.at - start] = (copy[this.at - start] ?? 0) ^ 0x01;
      callback(null, copy);
      return;
    }
    callback(null, chunk);
  }
}
