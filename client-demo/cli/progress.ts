import { formatBytes, formatDuration, formatRate } from './units.js';

/** Where progress goes: process.stdout, or a stand-in in tests. */
export type Output = {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
};

export type ProgressMode = 'tty' | 'lines' | 'quiet';

export type ProgressLine = Readonly<{
  name: string;
  sent: number;
  total: number;
  bytesPerSecond: number | undefined;
  etaSeconds: number | undefined;
}>;

const BAR_WIDTH = 20;

/** Whole percent, never 100 before the last byte. */
export function percentOf(sent: number, total: number): number {
  if (total <= 0) return 100;
  if (sent >= total) return 100;
  return Math.min(99, Math.floor((sent / total) * 100));
}

export function renderBar(sent: number, total: number, width = BAR_WIDTH): string {
  const filled = total <= 0 ? width : Math.min(width, Math.floor((Math.max(0, sent) / total) * width));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/** "name  [#####-----]  42%  420 MiB / 1.0 GiB  12.3 MiB/s  ETA 0:48", cut to `columns` by shortening the name. */
export function formatProgressLine(line: ProgressLine, columns = Number.POSITIVE_INFINITY): string {
  const pct = `${percentOf(line.sent, line.total)}%`.padStart(4);
  const rest = `  ${renderBar(line.sent, line.total)}  ${pct}  ${formatBytes(line.sent)} / ${formatBytes(line.total)}  ${formatRate(line.bytesPerSecond)}  ETA ${formatDuration(line.etaSeconds)}`;
  const room = columns - rest.length - 1;
  return `${shorten(line.name, Math.max(8, room))}${rest}`;
}

/** Cuts the middle out of a long name: "a-very-lo…name.mp4". */
export function shorten(name: string, max: number): string {
  if (name.length <= max) return name;
  const keepEnd = Math.ceil((max - 1) / 2);
  const keepStart = max - 1 - keepEnd;
  return `${name.slice(0, keepStart)}…${name.slice(name.length - keepEnd)}`;
}

/**
 * Bytes per second over the last `windowMs`: responsive to a link that slows down or
 * recovers, steady enough to read. Undefined until there is half a second of samples.
 */
export class RateMeter {
  private readonly samples: { at: number; bytes: number }[] = [];

  constructor(private readonly windowMs = 5_000) {}

  add(at: number, bytes: number): void {
    const last = this.samples[this.samples.length - 1];
    // Progress can step back after a retry (bytes sent but never acknowledged): start over.
    if (last && bytes < last.bytes) this.samples.length = 0;
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && (this.samples[1]?.at ?? at) <= at - this.windowMs) this.samples.shift();
  }

  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < 500) return undefined;
    return ((last.bytes - first.bytes) * 1000) / (last.at - first.at);
  }
}

export interface FileProgress {
  /** `sent` bytes of the file are on their way (tus-js-client's onProgress). */
  update(sent: number): void;
  /** Ends the progress line (on a TTY, the cursor moves to the next line). */
  end(): void;
}

/** In line mode, print when another 5% is done, or every few seconds while it moves slowly. */
const LINE_STEP_PERCENT = 5;
const LINE_EVERY_MS = 5_000;
/** A TTY redraws at most this often. */
const REDRAW_MS = 100;

/**
 * Renders progress and notices. On a TTY, one line redrawn in place; otherwise (a pipe, a log,
 * a test) a plain line every 5% or few seconds; `quiet` renders no progress and no notices.
 */
export class ProgressReporter {
  private drawn = false;

  constructor(
    private readonly out: Output,
    readonly mode: ProgressMode,
    private readonly now: () => number = Date.now,
  ) {}

  static modeFor(out: Output, quiet: boolean): ProgressMode {
    if (quiet) return 'quiet';
    return out.isTTY ? 'tty' : 'lines';
  }

  /** A line of its own (resuming, retrying, notices), above the progress line. */
  notice(text: string): void {
    if (this.mode === 'quiet') return;
    this.clearLine();
    this.out.write(`${text}\n`);
  }

  start(name: string, total: number): FileProgress {
    const meter = new RateMeter();
    let lastSent = 0;
    let lastDraw = Number.NEGATIVE_INFINITY;
    let lastStep = -1;
    let lastLineAt = this.now();
    let lastLineSent = -1;
    const render = (sent: number) => {
      const bytesPerSecond = meter.rate();
      const etaSeconds = bytesPerSecond && bytesPerSecond > 0 ? (total - sent) / bytesPerSecond : undefined;
      return formatProgressLine({ name, sent, total, bytesPerSecond, etaSeconds }, this.mode === 'tty' ? (this.out.columns ?? 80) : undefined);
    };
    const draw = (sent: number) => {
      this.out.write(`\r\x1b[2K${render(sent)}`);
      this.drawn = true;
    };
    return {
      update: (sent) => {
        const at = this.now();
        meter.add(at, sent);
        lastSent = sent;
        if (this.mode === 'tty') {
          if (at - lastDraw >= REDRAW_MS || sent >= total) {
            lastDraw = at;
            draw(sent);
          }
        } else if (this.mode === 'lines') {
          const step = Math.floor(percentOf(sent, total) / LINE_STEP_PERCENT);
          const due = step > lastStep || (at - lastLineAt >= LINE_EVERY_MS && sent !== lastLineSent);
          if (due) {
            lastStep = Math.max(lastStep, step);
            lastLineAt = at;
            lastLineSent = sent;
            this.out.write(`${render(sent)}\n`);
          }
        }
      },
      end: () => {
        if (this.mode === 'tty') {
          if (!this.drawn) draw(lastSent);
          this.out.write('\n');
          this.drawn = false;
        }
      },
    };
  }

  private clearLine(): void {
    if (this.mode === 'tty' && this.drawn) {
      this.out.write('\r\x1b[2K');
      this.drawn = false;
    }
  }
}
