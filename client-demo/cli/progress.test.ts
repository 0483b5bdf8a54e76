import { describe, expect, it } from 'vitest';
import { formatProgressLine, percentOf, ProgressReporter, RateMeter, renderBar, shorten, type Output } from './progress.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

class FakeOutput implements Output {
  text = '';
  constructor(
    readonly isTTY = false,
    readonly columns = 100,
  ) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
  lines(): string[] {
    return this.text.split('\n').filter((line) => line !== '');
  }
}

describe('formatProgressLine', () => {
  it('shows name, bar, percent, bytes, speed and time left', () => {
    const line = formatProgressLine({ name: 'movie.mp4', sent: 420 * MiB, total: GiB, bytesPerSecond: 12.3 * MiB, etaSeconds: 48 });
    expect(line).toBe('movie.mp4  [########------------]   41%  420 MiB / 1.0 GiB  12.3 MiB/s  ETA 0:48');
  });

  it('shows dashes before the speed is known', () => {
    expect(formatProgressLine({ name: 'a', sent: 0, total: 10, bytesPerSecond: undefined, etaSeconds: undefined })).toContain('0%  0 B / 10 B  -- MiB/s  ETA --:--');
  });

  it('fits a terminal width by shortening the name', () => {
    const line = formatProgressLine({ name: `${'very-long-name-'.repeat(10)}.mp4`, sent: MiB, total: GiB, bytesPerSecond: MiB, etaSeconds: 1023 }, 80);
    expect(line.length).toBeLessThan(80);
    expect(line).toContain('…');
    expect(line).toMatch(/\.mp4 {2}\[/);
  });
});

describe('percentOf and renderBar', () => {
  it('never shows 100% before the last byte', () => {
    expect(percentOf(GiB - 1, GiB)).toBe(99);
    expect(percentOf(GiB, GiB)).toBe(100);
    expect(percentOf(0, 0)).toBe(100);
  });

  it('fills the bar in proportion', () => {
    expect(renderBar(0, 100, 10)).toBe('[----------]');
    expect(renderBar(42, 100, 10)).toBe('[####------]');
    expect(renderBar(100, 100, 10)).toBe('[##########]');
  });
});

describe('shorten', () => {
  it('cuts the middle and keeps both ends', () => {
    expect(shorten('abcdefghij', 7)).toBe('abc…hij');
    expect(shorten('short', 7)).toBe('short');
  });
});

describe('RateMeter', () => {
  it('measures over the recent window only', () => {
    const meter = new RateMeter(5_000);
    meter.add(0, 0);
    expect(meter.rate()).toBeUndefined();
    meter.add(1_000, 10 * MiB);
    expect(meter.rate()).toBe(10 * MiB);
    // Slower lately: 20 s later the first samples have left the window.
    for (let t = 2_000; t <= 20_000; t += 1_000) meter.add(t, 10 * MiB + ((t - 1_000) / 1_000) * MiB);
    expect(meter.rate()).toBeCloseTo(MiB, -3);
  });

  it('starts over when progress steps back after a retry', () => {
    const meter = new RateMeter();
    meter.add(0, 0);
    meter.add(1_000, 8 * MiB);
    meter.add(1_100, 4 * MiB);
    expect(meter.rate()).toBeUndefined();
  });
});

describe('ProgressReporter', () => {
  it('off a TTY, prints a line every 5% and every 5 s while slow', () => {
    let now = 0;
    const out = new FakeOutput(false);
    const reporter = new ProgressReporter(out, 'lines', () => now);
    const progress = reporter.start('a.bin', 100 * MiB);
    for (let mib = 0; mib <= 12; mib += 1) {
      now += 100;
      progress.update(mib * MiB);
    }
    // 0%, 5%, 10%: one line each.
    expect(out.lines().map((line) => line.match(/(\d+)%/)?.[1])).toEqual(['0', '5', '10']);
    now += 6_000;
    progress.update(12 * MiB + 1);
    expect(out.lines()).toHaveLength(4);
    progress.update(100 * MiB);
    progress.end();
    expect(out.lines().at(-1)).toContain('100%');
    expect(out.text).not.toContain('\r');
  });

  it('on a TTY, redraws one line in place and puts notices above it', () => {
    let now = 0;
    const out = new FakeOutput(true, 100);
    const reporter = new ProgressReporter(out, ProgressReporter.modeFor(out, false), () => now);
    expect(reporter.mode).toBe('tty');
    const progress = reporter.start('a.bin', 10 * MiB);
    progress.update(MiB);
    now += 50;
    progress.update(2 * MiB); // within 100 ms of the last draw: skipped
    now += 100;
    progress.update(3 * MiB);
    reporter.notice('a.bin: the connection was cut (ECONNRESET); retry 1 of 10 in 500 ms');
    now += 100;
    progress.update(10 * MiB);
    progress.end();
    const draws = out.text.split('\r\x1b[2K');
    expect(draws.filter((d) => d.startsWith('a.bin  ['))).toHaveLength(3);
    expect(out.text).toContain('\r\x1b[2Ka.bin: the connection was cut (ECONNRESET); retry 1 of 10 in 500 ms\n');
    const last = draws.at(-1) ?? '';
    expect(last).toMatch(/^a\.bin {2}\[#{20}\]\s+100% {2}10\.0 MiB \/ 10\.0 MiB {2}.*\n$/);
  });

  it('prints nothing when quiet', () => {
    const out = new FakeOutput(true);
    const reporter = new ProgressReporter(out, ProgressReporter.modeFor(out, true));
    const progress = reporter.start('a', 10);
    progress.update(5);
    reporter.notice('resuming a');
    progress.end();
    expect(out.text).toBe('');
  });
});
