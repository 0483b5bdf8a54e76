/**
 * Screenshots of the browser demo in headless Chromium, at desktop (1280×800) and phone
 * (375×812) width, in the states people see: empty; several uploads (one paused, one retrying);
 * done with its sha256; a file refused for its size; a server refusal (no token). Look at them
 * after changing the page.
 *
 *   node --import tsx e2e/browser/screenshots.ts [out-dir]     (default /tmp/screens)
 *
 * Uses the real server (port 0, temporary storage) and CHROMIUM_BIN or /usr/bin/chromium
 * (e2e/services/chromium.sh install puts it there). Everything it starts is stopped at the end.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { GiB, KiB, makeFile, MiB } from '../support/files.js';
import { Scope, sleep } from '../support/server-process.js';
import { Contexts, launchChromium, openDemo, rowOf, throttleUploads, waitForProgress, waitForRowState } from './browser.js';

const OUT = path.resolve(process.argv[2] ?? '/tmp/screens');
const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 375, height: 812 },
} as const;

/** A small file that file-type recognises as video/mp4 (an ISO BMFF `ftyp` box), then noise. */
async function makeMp4(dir: string, name: string, size: number): Promise<string> {
  const file = await makeFile(dir, name, size, name);
  const handle = await fs.open(file.path, 'r+');
  try {
    const ftyp = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypmp42'), Buffer.alloc(4), Buffer.from('mp42isom')]);
    await handle.write(ftyp, 0, ftyp.length, 0);
  } finally {
    await handle.close();
  }
  return file.path;
}

async function shoot(page: Page, name: string): Promise<void> {
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  process.stdout.write(`${file}\n`);
}

async function main(): Promise<void> {
  const scope = new Scope();
  let browser: Browser | undefined;
  const contexts = new Contexts(() => {
    if (!browser) throw new Error('no browser');
    return browser;
  });
  try {
    await fs.mkdir(OUT, { recursive: true });
    browser = await launchChromium({ executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium' });
    const server = await scope.server();
    const guarded = await scope.server({ env: { AUTH_JWT_SECRET: 'screenshots-secret-0123456789abcdef0123' } });
    const dir = await scope.tempDir('tus-screens-');
    const video = await makeMp4(dir, 'holiday-video.mp4', 6 * MiB);
    const movie = path.join(dir, 'movie.mp4');
    await fs.writeFile(movie, '');
    await fs.truncate(movie, Math.round(2.4 * GiB));
    const several = await Promise.all(
      ['interview-raw-footage.mov', 'family-dinner-2024-12-24-kitchen-camera-angle-2-final-final.mp4', 'slides.pdf', 'drone-flight.mp4'].map((name, i) =>
        makeFile(dir, name, [48, 40, 24, 64][i]! * MiB, name),
      ),
    );
    const small = await makeFile(dir, 'notes.txt', 12 * KiB, 'notes');

    for (const [label, viewport] of Object.entries(VIEWPORTS)) {
      const isMobile = label === 'phone';
      const context = () => contexts.new({ viewport, isMobile, hasTouch: isMobile, deviceScaleFactor: 1 });

      // Empty.
      {
        const { page } = await openDemo(await context(), server.url);
        await shoot(page, `${label}-1-empty`);
      }

      // Several uploads: one paused, one retrying (its requests refused by the "network"), two sending.
      {
        const ctx = await context();
        const { page } = await openDemo(ctx, server.url);
        await throttleUploads(page, 3 * MiB);
        const retryName = 'interview-raw-footage.mov';
        const blocked = new Set<string>();
        // The upload of one file fails at the connection once created, so it keeps retrying.
        await page.route('**/files/**', async (route) => {
          const request = route.request();
          if (blocked.has(request.url())) return route.abort('connectionreset');
          const metadata = request.headers()['upload-metadata'] ?? '';
          if (request.method() === 'POST' && metadata.includes(Buffer.from(retryName).toString('base64'))) {
            const response = await route.fetch();
            const location = response.headers().location;
            if (location) blocked.add(new URL(location, request.url()).href);
            return route.fulfill({ response });
          }
          return route.continue();
        });
        await page.setInputFiles('#files', [...several.map((f) => f.path), small.path]);
        await waitForRowState(page, retryName, ['retrying'], 15_000);
        await waitForProgress(page, 'slides.pdf', 4 * MiB, 30_000);
        await rowOf(page, 'slides.pdf').getByRole('button', { name: 'Pause slides.pdf' }).click();
        await waitForRowState(page, 'slides.pdf', ['paused'], 5_000);
        await waitForProgress(page, 'drone-flight.mp4', 1 * MiB, 30_000);
        await sleep(1_500); // speeds and times left settle
        await shoot(page, `${label}-2-uploading`);
        await ctx.close();
      }

      // Done, with the sha256 and the detected type.
      {
        const { page } = await openDemo(await context(), server.url);
        await page.setInputFiles('#files', video);
        await waitForRowState(page, 'holiday-video.mp4', ['done'], 30_000);
        await shoot(page, `${label}-3-done`);
      }

      // Refused before upload: over the server's limit.
      {
        const { page } = await openDemo(await context(), server.url);
        await page.setInputFiles('#files', movie);
        await waitForRowState(page, 'movie.mp4', ['refused'], 15_000);
        await shoot(page, `${label}-4-refused`);
      }

      // Refused by the server, in words: no token for a server that needs one.
      {
        const { page } = await openDemo(await context(), guarded.url);
        await page.setInputFiles('#files', small.path);
        await waitForRowState(page, 'notes.txt', ['error'], 15_000);
        await shoot(page, `${label}-5-token-needed`);
      }
      await contexts.closeAll();
    }
  } finally {
    await contexts.closeAll();
    await browser?.close();
    await scope.dispose();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`screenshots failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
