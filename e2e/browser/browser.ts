import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import type { ProvidedChromium } from '../services/chromium-global-setup.js';
import { pollUntil, withTimeout } from '../support/server-process.js';

/**
 * Helpers for the real-browser tests: Debian's chromium (installed by the chromium globalSetup)
 * driven by playwright-core, and the demo page's rows read the way a user reads them.
 */

const LAUNCH_TIMEOUT_MS = 60_000;

/**
 * Headless chromium: the one the globalSetup provides (`launchChromium(inject('chromium'))`);
 * fails with the install's own message when there is none.
 */
export async function launchChromium(provided: ProvidedChromium | undefined): Promise<Browser> {
  if (!provided?.executablePath) {
    throw new Error(provided?.error ?? 'no chromium: add e2e/services/chromium-global-setup.ts to the vitest globalSetup');
  }
  return chromium.launch({ executablePath: provided.executablePath, headless: true, args: ['--no-sandbox'], timeout: LAUNCH_TIMEOUT_MS });
}

/** Contexts opened by a test, closed (bounded) by closeAll() in afterEach. */
export class Contexts {
  private readonly open = new Set<BrowserContext>();

  constructor(private readonly browser: () => Browser) {}

  async new(options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
    const context = await this.browser().newContext({ viewport: { width: 1280, height: 800 }, ...options });
    context.setDefaultTimeout(30_000);
    this.open.add(context);
    return context;
  }

  async closeAll(): Promise<void> {
    const contexts = [...this.open];
    this.open.clear();
    await Promise.all(contexts.map((context) => withTimeout(context.close(), 15_000, 'a browser context to close').catch(() => undefined)));
  }
}

/** What the page says about itself while a test runs: errors, CSP violations, every row state it showed. */
export type PageRecord = Readonly<{ errors: string[] }>;

/**
 * Opens the demo page and starts recording: page errors and console errors go to `errors`, and
 * every text a row's state line shows goes to `window.__rowStates` (read with seenStates()).
 */
export async function openDemo(context: BrowserContext, url: string): Promise<{ page: Page; record: PageRecord }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    // The browser logs failed requests as console errors; the tests cause those on purpose.
    if (message.type() === 'error' && !/Failed to load resource|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED/.test(message.text())) {
      errors.push(`console: ${message.text()}`);
    }
  });
  await page.addInitScript(() => {
    const seen: { row: string; text: string }[] = [];
    (window as unknown as { __rowStates: typeof seen }).__rowStates = seen;
    document.addEventListener('securitypolicyviolation', (event) => console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`));
    const observe = () => {
      const list = document.getElementById('uploads');
      if (!list) return;
      new MutationObserver(() => {
        for (const state of list.querySelectorAll<HTMLElement>('.upload-state')) {
          const row = state.closest<HTMLElement>('li')?.querySelector('.upload-name')?.textContent ?? '';
          const text = state.textContent ?? '';
          const last = seen.filter((entry) => entry.row === row).at(-1);
          if (last?.text !== text) seen.push({ row, text });
        }
      }).observe(list, { subtree: true, childList: true, characterData: true });
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', observe);
    else observe();
  });
  await page.goto(`${url}/`);
  // The page is ready once it knows the server's limit (OPTIONS answered).
  await page.locator('#limit').filter({ hasText: /Up to/ }).waitFor({ timeout: 15_000 });
  return { page, record: { errors } };
}

/** Every state text the rows of this page showed so far, for one file name. */
export async function seenStates(page: Page, name: string): Promise<string[]> {
  const seen = await page.evaluate(() => (window as unknown as { __rowStates: { row: string; text: string }[] }).__rowStates);
  return seen.filter((entry) => entry.row === name).map((entry) => entry.text);
}

/** The row of a file, by its name. */
export const rowOf = (page: Page, name: string): Locator => page.locator('li.upload', { has: page.locator('.upload-name', { hasText: name }) });

/** Waits (bounded) until a row's `data-state` is one of `states`; the row's text is in the error otherwise. */
export async function waitForRowState(page: Page, name: string, states: readonly string[], timeoutMs = 60_000): Promise<string> {
  const row = rowOf(page, name);
  try {
    return await pollUntil(
      async () => {
        const state = await row.getAttribute('data-state', { timeout: 5_000 });
        return state !== null && states.includes(state) ? state : undefined;
      },
      `row ${name} to be ${states.join(' or ')}`,
      timeoutMs,
      50,
    );
  } catch (error) {
    const text = await row.innerText({ timeout: 1_000 }).catch(() => '(no row)');
    throw new Error(`${(error as Error).message}; the row reads: ${text.replace(/\n+/g, ' | ')}`, { cause: error });
  }
}

/** The bytes a row says were sent (its progress bar's value). */
export async function rowProgress(page: Page, name: string): Promise<number> {
  return Number(await rowOf(page, name).locator('progress').evaluate((bar: HTMLProgressElement) => bar.value));
}

/** Waits (bounded) until a row's progress bar shows at least `bytes`. */
export async function waitForProgress(page: Page, name: string, bytes: number, timeoutMs = 60_000): Promise<number> {
  return pollUntil(
    async () => {
      const sent = await rowProgress(page, name);
      return sent >= bytes ? sent : undefined;
    },
    `row ${name} to show ${bytes} bytes sent`,
    timeoutMs,
    50,
  );
}

/** A page whose uploads are slowed; it goes offline and back through the same emulation. */
export type ThrottledNetwork = Readonly<{ setOffline(offline: boolean): Promise<void> }>;

/**
 * Slows the page's uploads to `bytesPerSecond` (Chrome DevTools Protocol network emulation), so
 * an interruption lands mid-upload. Applies to requests started after the call.
 *
 * Go offline through the returned setOffline, not context.setOffline alone: Chrome applies this
 * session's conditions to the page's requests, so with only Playwright's offline flag set, the
 * page reads navigator.onLine === false yet its requests still get through.
 */
export async function throttleUploads(page: Page, bytesPerSecond: number): Promise<ThrottledNetwork> {
  const cdp = await page.context().newCDPSession(page);
  const emulate = (offline: boolean) =>
    cdp.send('Network.emulateNetworkConditions', { offline, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond });
  await cdp.send('Network.enable');
  await emulate(false);
  return {
    async setOffline(offline) {
      await page.context().setOffline(offline);
      await emulate(offline);
    },
  };
}
