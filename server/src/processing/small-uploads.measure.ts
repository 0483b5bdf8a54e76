/**
 * Cost of finished small uploads, processing included (not a test; run with `npx tsx`):
 * 2,000 × 16 KiB creation-with-upload, 32 in flight, through app.request (no socket), until
 * the queue is idle. Prints uploads/s and CPU per upload (all threads, client included) with
 * and without the streaming digest: `npx tsx server/src/processing/small-uploads.measure.ts [uploads] [variant]`.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createApp } from '../app.js';
import { parseConfig } from '../config.js';
import { createStorage } from '../storage/index.js';
import { defaultProcessors } from './index.js';
import type { Processor } from './processors/types.js';

const UPLOADS = Number(process.argv[2] ?? 2000);
const IN_FLIGHT = 32;
const body = randomBytes(16 * 1024);

type Variant = { name: string; streamed: boolean };

async function run({ name, streamed }: Variant): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'small-uploads-'));
  const config = parseConfig({ STORAGE_DIR: dir, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent' });
  const logger = pino({ level: 'silent' });
  const storage = await createStorage(config);
  const strip = (p: Processor): Processor => ({ name: p.name, run: (input) => p.run({ ...input, streamed: undefined }) });
  const processors = defaultProcessors(config, storage).map((p) => (streamed ? p : strip(p)));
  const app = createApp(config, { storage, logger, processors });
  await app.startBackground();
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < UPLOADS) {
        next += 1;
        const res = await app.app.request('http://localhost/files', {
          method: 'POST',
          headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(body.length), 'Content-Type': 'application/offset+octet-stream' },
          body,
        });
        if (res.status !== 201) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
      }
    }),
  );
  const t1 = performance.now();
  await app.state.queue.idle();
  const t2 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${name.padEnd(44)} uploads ${(UPLOADS / ((t1 - t0) / 1000)).toFixed(0)}/s, until processed ${(UPLOADS / ((t2 - t0) / 1000)).toFixed(0)}/s, ${((cpu.user + cpu.system) / UPLOADS / 1000).toFixed(2)} ms CPU per upload`,
  );
  await app.stopBackground();
  await fs.rm(dir, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const variants: Variant[] = [
    { name: 'file read again (digest ignored)', streamed: false },
    { name: 'streaming digest', streamed: true },
  ];
  const only = process.argv[3];
  for (let round = 0; round < (only ? 1 : 2); round += 1) for (const variant of variants) if (!only || variant.name.includes(only)) await run(variant);
}

const keepAlive = setInterval(() => undefined, 1000);
main().then(
  () => clearInterval(keepAlive),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
