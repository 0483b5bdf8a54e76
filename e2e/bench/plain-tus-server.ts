/**
 * Baseline for e2e/bench/throughput.ts: a plain @tus/server + @tus/file-store on node:http,
 * with none of this project's code in the request path.
 *
 * Same contract as server/src/main.ts: env HOST, PORT (0 = pick one), STORAGE_DIR, and one
 * line `listening on http://HOST:PORT` on stdout once it accepts connections.
 */
import http from 'node:http';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 0);
const directory = process.env.STORAGE_DIR;
if (!directory) {
  process.stderr.write('STORAGE_DIR is required\n');
  process.exit(1);
}
fs.mkdirSync(directory, { recursive: true });

const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => {
  void tus.handle(req, res);
});
// Node's default 300 s requestTimeout would cut a slow 1 GiB body; the app under test sets 0 too.
server.requestTimeout = 0;

server.listen(port, host, () => {
  const { port: actual } = server.address() as AddressInfo;
  process.stdout.write(`listening on http://${host}:${actual}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
