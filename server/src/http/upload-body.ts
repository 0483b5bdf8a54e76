import type { Readable } from 'node:stream';

export type CutReason = 'idle' | 'too-slow' | 'shutdown' | 'client-aborted' | 'stopped';

/** The slowest a body may arrive: `bytesPerSecond` on average over each `windowMs` (MIN_UPLOAD_RATE). */
export type MinUploadRate = Readonly<{ bytesPerSecond: number; windowMs: number }>;

/**
 * Queued chunks before we stop reading the socket: four (about 256 KiB), never the file. Once
 * paused, the socket resumes only when the queue is empty: resuming at every chunk taken
 * turned the TCP window over so often that, with 64 uploads at once, clients spent 2-3 times
 * the CPU and throughput fell to 0.84 of plain @tus/server (0.98 with this).
 */
const QUEUED_CHUNKS = 4;

/**
 * The request body handed to @tus/server, read straight from the Node request.
 *
 * It can be *cut*: closed as if the client had finished sending. @tus/server then stores
 * every byte that arrived and answers with the new Upload-Offset, the lock is released,
 * and the client resumes from there. We cut when
 * - the client sends nothing for the idle timeout (a stalled mobile link),
 * - the client sends slower than the minimum rate over a whole window: the idle timeout is
 *   per chunk, so one byte every 59 s would otherwise hold the upload's lock forever,
 * - the server shuts down (what arrived is persisted before we exit),
 * - the client disconnects (an error here would make the store discard buffered bytes).
 */
export class UploadBody {
  readonly stream: ReadableStream<Uint8Array>;
  bytesReceived = 0;
  cutReason: CutReason | undefined;

  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private finished = false;
  /** True while we, not the client, hold the data back (the store is slower than the network). */
  private backpressured = false;
  private readonly idleTimer: NodeJS.Timeout;
  private readonly rateTimer: NodeJS.Timeout | undefined;
  /** Bytes each window must bring; bytesReceived when it began; whether the store held the body back meanwhile. */
  private readonly minWindowBytes: number = 0;
  private windowStartBytes = 0;
  private heldBackInWindow = false;

  /**
   * @param observe sees every chunk handed to the store, in order (the streaming digest);
   *   a chunk queued but never consumed is seen too, so it must compare with what was stored.
   * @param minRate the slowest average accepted; none (or 0 bytes/s) accepts any pace.
   */
  constructor(
    private readonly source: Readable,
    idleTimeoutMs: number,
    private readonly observe?: (chunk: Buffer) => void,
    minRate?: MinUploadRate,
  ) {
    this.idleTimer = setTimeout(this.onIdle, idleTimeoutMs);
    this.idleTimer.unref();
    if (minRate && minRate.bytesPerSecond > 0) {
      this.minWindowBytes = (minRate.bytesPerSecond * minRate.windowMs) / 1000;
      this.rateTimer = setInterval(this.onRateCheck, minRate.windowMs);
      this.rateTimer.unref();
    }
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
          source.on('data', this.onData);
          source.on('end', this.onEnd);
          source.on('error', this.onGone);
          source.on('close', this.onGone);
          source.pause();
        },
        pull: () => {
          if (this.finished) return;
          // Resume only once the queue is empty: fewer pause/resume turns of the socket.
          if (this.backpressured && (this.controller.desiredSize ?? 0) < QUEUED_CHUNKS) return;
          if (this.backpressured) this.idleTimer.refresh();
          this.backpressured = false;
          source.resume();
        },
        // The consumer gave up (for example the size limit was hit): stop reading.
        cancel: () => this.detach(),
      },
      { highWaterMark: QUEUED_CHUNKS },
    );
  }

  /** Ends the body gracefully; @tus/server keeps what arrived. Idempotent. */
  cut(reason: CutReason): void {
    if (this.finished) return;
    this.cutReason = reason;
    this.detach();
    this.controller.close();
  }

  get isFinished(): boolean {
    return this.finished;
  }

  private readonly onData = (chunk: Buffer) => {
    this.bytesReceived += chunk.byteLength;
    this.idleTimer.refresh();
    this.observe?.(chunk);
    this.controller.enqueue(chunk);
    if ((this.controller.desiredSize ?? 0) <= 0) {
      this.backpressured = true;
      this.heldBackInWindow = true;
      this.source.pause();
    }
  };

  private readonly onIdle = () => {
    // A slow disk is not an idle client: wait for the store to catch up.
    if (this.backpressured) {
      this.idleTimer.refresh();
      return;
    }
    this.cut('idle');
  };

  private readonly onRateCheck = () => {
    const arrived = this.bytesReceived - this.windowStartBytes;
    this.windowStartBytes = this.bytesReceived;
    // A window in which the store held the body back says nothing about the client.
    const heldBack = this.heldBackInWindow || this.backpressured;
    this.heldBackInWindow = this.backpressured;
    if (!heldBack && arrived < this.minWindowBytes) this.cut('too-slow');
  };

  private readonly onEnd = () => {
    if (this.finished) return;
    this.detach();
    this.controller.close();
  };

  private readonly onGone = () => {
    // 'close' also follows a normal 'end'; only a body that never ended was cut short.
    if (!this.source.readableEnded) this.cut('client-aborted');
  };

  private detach(): void {
    this.finished = true;
    clearTimeout(this.idleTimer);
    clearInterval(this.rateTimer);
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('close', this.onGone);
    // Keep an error listener: an unhandled 'error' on the request would crash the process.
    this.source.off('error', this.onGone);
    this.source.on('error', ignore);
  }
}

function ignore(): void {}
