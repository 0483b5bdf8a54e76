import fs from 'node:fs';
import path from 'node:path';

/** Disk space used below `dir` (allocated blocks, as `du` counts them); 0 when it does not exist. */
export function diskUsage(dir: string): number {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let bytes = 0;
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      bytes += diskUsage(file);
      continue;
    }
    try {
      bytes += fs.lstatSync(file).blocks * 512;
    } catch {
      // Removed between readdir and stat: a part that was just sent.
    }
  }
  return bytes;
}

/**
 * Peak disk use of a server's storage directory and of the subdirectory where it buffers
 * parts on their way to S3, sampled every `intervalMs` (a part lives there for well under a
 * second, so the polling interval must be short).
 */
export class DiskSampler {
  peakTotal = 0;
  peakTemp = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly root: string,
    private readonly tempDir: string | undefined,
    intervalMs = 50,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    this.peakTotal = Math.max(this.peakTotal, diskUsage(this.root));
    if (this.tempDir) this.peakTemp = Math.max(this.peakTemp, diskUsage(this.tempDir));
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}
