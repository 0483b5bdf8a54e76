import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { GiB, makeFile, MiB } from '../support/files.js';
import { Scope, type ServerProcess } from '../support/server-process.js';
import { Contexts, launchChromium, openDemo, throttleUploads, waitForProgress, waitForRowState } from './browser.js';

type AxNode = { ignored?: boolean; role?: { value?: string }; name?: { value?: string }; backendDOMNodeId?: number };

/** Controls a user operates or reads, by their accessibility role. */
const CONTROL_ROLES = new Set(['button', 'textbox', 'link', 'progressbar', 'checkbox', 'combobox', 'slider', 'spinbutton']);

/** Roles and names of every control in the accessibility tree Chrome builds (what a screen reader gets). */
async function controls(page: Page): Promise<{ role: string; name: string }[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as { nodes: AxNode[] };
    return nodes.filter((node) => !node.ignored && CONTROL_ROLES.has(node.role?.value ?? '')).map((node) => ({ role: node.role?.value ?? '', name: (node.name?.value ?? '').trim() }));
  } finally {
    await cdp.detach();
  }
}

/** What has keyboard focus: its id or accessible label, and whether it (or the file picker's zone) shows a focus ring. */
function focused(page: Page): Promise<{ key: string; ring: boolean }> {
  return page.evaluate(() => {
    const element = document.activeElement as HTMLElement | null;
    if (!element || element === document.body) return { key: 'body', ring: false };
    const key = element.id ? `#${element.id}` : (element.getAttribute('aria-label') ?? element.textContent ?? element.tagName);
    // The file input is visually hidden: its label, the drop zone, carries the ring.
    const shown = element.id === 'files' ? document.getElementById('drop-zone') : element;
    const style = shown ? getComputedStyle(shown) : undefined;
    return { key, ring: style !== undefined && style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 };
  });
}

describe('the browser demo is usable by keyboard and screen reader, at phone width', () => {
  const scope = new Scope();
  let browser: Browser;
  let server: ServerProcess;
  let dir: string;
  const contexts = new Contexts(() => browser);

  beforeAll(async () => {
    browser = await launchChromium(inject('chromium'));
    scope.defer(() => browser.close());
    server = await scope.server();
    dir = await scope.tempDir('tus-browser-');
  });
  afterEach(() => contexts.closeAll());
  afterAll(() => scope.dispose());

  it('names every control, has a live region, and tabs to the picker, the token field, Pause and Cancel with a visible ring', async () => {
    const file = await makeFile(dir, 'slow.bin', 8 * MiB, 'browser-a11y');
    const { page, record } = await openDemo(await contexts.new(), server.url);
    await throttleUploads(page, 256 * 1024);
    await page.setInputFiles('#files', file.path);
    await waitForProgress(page, 'slow.bin', 1, 15_000);

    const found = await controls(page);
    expect(found.filter((control) => control.name === ''), JSON.stringify(found)).toEqual([]);
    expect(found).toEqual(
      expect.arrayContaining([
        { role: 'textbox', name: expect.stringMatching(/^Access token/) },
        { role: 'progressbar', name: 'Upload progress of slow.bin' },
        { role: 'button', name: 'Pause slow.bin' },
        { role: 'button', name: 'Cancel slow.bin' },
      ]),
    );
    // Chrome names the file input's button after its label.
    expect(found.some((control) => control.role === 'button' && /Choose files/.test(control.name))).toBe(true);
    expect(await page.locator('[aria-live="polite"]').count()).toBe(1);

    // Tab from the top of the page.
    await page.locator('body').focus();
    const order: string[] = [];
    const unringed: string[] = [];
    for (let i = 0; i < 10; i += 1) {
      await page.keyboard.press('Tab');
      const { key, ring } = await focused(page);
      if (key === 'body' || order.includes(key)) break;
      order.push(key);
      if (!ring) unringed.push(key);
    }
    expect(order.slice(0, 4)).toEqual(['#files', '#token', 'Pause slow.bin', 'Cancel slow.bin']);
    expect(unringed).toEqual([]);

    // Pause and resume from the keyboard (focus left the page after the last stop: come back).
    await page.keyboard.press('Shift+Tab');
    expect((await focused(page)).key).toBe('Cancel slow.bin');
    await page.keyboard.press('Shift+Tab');
    expect((await focused(page)).key).toBe('Pause slow.bin');
    await page.keyboard.press('Enter');
    await waitForRowState(page, 'slow.bin', ['paused'], 5_000);
    await expect.poll(() => page.locator('#announcer').innerText()).toBe('slow.bin: paused');
    expect((await focused(page)).key).toBe('Resume slow.bin');
    await page.keyboard.press('Space');
    await waitForRowState(page, 'slow.bin', ['uploading', 'retrying'], 5_000);
    expect(record.errors).toEqual([]);
  });

  it('fits 375 px: a long file name wraps inside its row, nothing scrolls sideways', async () => {
    const long = `${'a-very-long-file-name-without-spaces-'.repeat(4)}final.bin`;
    const file = await makeFile(dir, long, 64 * 1024, 'browser-narrow');
    const { page, record } = await openDemo(await contexts.new({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true }), server.url);
    await page.setInputFiles('#files', file.path);
    await waitForRowState(page, long, ['done'], 30_000);

    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
      overflowing: [...document.querySelectorAll<HTMLElement>('main *')].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5).map((el) => el.className || el.tagName),
    }));
    expect(widths.overflowing).toEqual([]);
    expect(widths.page).toBeLessThanOrEqual(widths.viewport);
    expect(record.errors).toEqual([]);
  });

  it('writes sizes 1024-based as KB/MB/GB, as the limit message needs', async () => {
    const { page } = await openDemo(await contexts.new(), server.url);
    // A string, not a function: the test runner would rewrite import() in a function's source.
    const words = (await page.evaluate(`(async () => {
      const format = await import('/demo/format.js');
      const gib = ${GiB};
      return {
        sizes: [0, 1023, 1024, 1536, 100 * 1024 * 1024, 2 * gib, Math.round(2.4 * gib)].map((n) => format.formatBytes(n)),
        message: format.overLimitMessage('movie.mp4', Math.round(2.4 * gib), 2 * gib),
        close: format.overLimitMessage('movie.mp4', 2 * gib + 1, 2 * gib),
      };
    })()`)) as { sizes: string[]; message: string; close: string };
    expect(words.sizes).toEqual(['0 B', '1023 B', '1 KB', '1.5 KB', '100 MB', '2 GB', '2.4 GB']);
    expect(words.message).toBe('movie.mp4 is 2.4 GB; the limit is 2 GB');
    expect(words.close).toBe('movie.mp4 is 2,147,483,649 bytes; the limit is 2,147,483,648 bytes');
  });
});
