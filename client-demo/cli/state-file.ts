import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PreviousUpload, UrlStorage } from 'tus-js-client';

/** What identifies "the same upload" between runs: the same file, unchanged, to the same endpoint. */
export type FileIdentity = Readonly<{ path: string; size: number; mtimeMs: number; endpoint: string }>;

/** One unfinished upload, as kept between runs. */
export type StateEntry = Readonly<
  FileIdentity & {
    uploadUrl: string | null;
    /** The partial uploads' URLs of a parallel upload (tus concatenation). */
    parallelUploadUrls: readonly string[] | null;
    metadata: Readonly<Record<string, string>>;
    creationTime: string;
  }
>;

type StateDocument = { version: 1; uploads: Record<string, StateEntry> };

/**
 * The fingerprint of a file: absolute path, size, modification time and endpoint, hashed so
 * the key has a fixed length (the entry itself keeps the readable fields). A file that was
 * changed, or an upload to another server, gets a new upload instead of a wrong resume.
 */
export function fingerprintOf(identity: FileIdentity): string {
  const key = JSON.stringify([path.resolve(identity.path), identity.size, identity.mtimeMs, identity.endpoint]);
  return createHash('sha256').update(key).digest('hex');
}

/** Entries of uploads started this long ago are dropped: no tus server keeps an unfinished upload that long by default. */
export const ENTRY_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
/** A lock file older than this was left by a process that died (a write takes milliseconds). */
const STALE_LOCK_MS = 10_000;
const LOCK_WAIT_MS = 15_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isDocument(value: unknown): value is StateDocument {
  return typeof value === 'object' && value !== null && (value as StateDocument).version === 1 && typeof (value as StateDocument).uploads === 'object' && (value as StateDocument).uploads !== null;
}

export type StateFileEvents = Readonly<{
  /** The file held something other than our JSON; it was moved to `movedTo` and a fresh one started. */
  onCorrupt?: (movedTo: string) => void;
}>;

/**
 * The state file: fingerprint → upload URL, shared by every run (and every concurrent run)
 * of the uploader. Each change re-reads the file under a lock file, then writes a temporary
 * file, fsyncs it and renames it over the old one, so a kill, a crash or a power cut leaves
 * either the old or the new contents, never half of one.
 */
export class StateFile {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly events: StateFileEvents = {},
    private readonly now: () => number = Date.now,
  ) {}

  /** Creates the folder and checks that the file can be written: errors here stop the run before any upload. */
  async ensureWritable(): Promise<void> {
    await this.update(() => undefined);
  }

  async find(fingerprint: string): Promise<StateEntry | undefined> {
    await this.queue.catch(() => undefined);
    return (await this.read()).uploads[fingerprint];
  }

  async all(): Promise<Record<string, StateEntry>> {
    await this.queue.catch(() => undefined);
    return (await this.read()).uploads;
  }

  put(fingerprint: string, entry: StateEntry): Promise<void> {
    return this.update((uploads) => {
      uploads[fingerprint] = entry;
    });
  }

  remove(fingerprint: string): Promise<void> {
    return this.update((uploads) => {
      delete uploads[fingerprint];
    });
  }

  /** Settles when every change asked for so far is on disk (or has failed). */
  async flush(): Promise<void> {
    await this.queue.catch(() => undefined);
  }

  /** Changes run one after another in this process, and under the lock file across processes. */
  private update(change: (uploads: Record<string, StateEntry>) => void): Promise<void> {
    const run = this.queue.catch(() => undefined).then(async () => {
      await fs.mkdir(path.dirname(this.path), { recursive: true });
      await this.locked(async () => {
        const document = await this.read();
        change(document.uploads);
        const oldest = this.now() - ENTRY_MAX_AGE_MS;
        for (const [key, entry] of Object.entries(document.uploads)) {
          const created = Date.parse(entry.creationTime);
          if (Number.isFinite(created) && created < oldest) delete document.uploads[key];
        }
        await this.write(document);
      });
    });
    this.queue = run;
    return run;
  }

  private async read(): Promise<StateDocument> {
    let text: string;
    try {
      text = await fs.readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, uploads: {} };
      throw error;
    }
    if (text.trim() === '') return { version: 1, uploads: {} };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (isDocument(value)) return value;
    // Not ours, or damaged by something other than us: keep it aside rather than lose it silently.
    const movedTo = `${this.path}.corrupt-${this.now()}`;
    await fs.rename(this.path, movedTo);
    this.events.onCorrupt?.(movedTo);
    return { version: 1, uploads: {} };
  }

  private async write(document: StateDocument): Promise<void> {
    const temp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await fs.open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(document, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.rename(temp, this.path);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    // The rename itself survives a power cut only once the folder is synced (best effort: not every file system allows it).
    try {
      const dir = await fs.open(path.dirname(this.path), 'r');
      await dir.sync().finally(() => dir.close());
    } catch {
      // the data is still safe in the old or the new file
    }
  }

  private async locked<T>(task: () => Promise<T>): Promise<T> {
    const lock = `${this.path}.lock`;
    const deadline = this.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await fs.open(lock, 'wx');
        await handle.writeFile(String(process.pid)).finally(() => handle.close());
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const age = await fs.stat(lock).then(
        (stats) => this.now() - stats.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) await fs.rm(lock, { force: true });
      else if (this.now() > deadline) throw new Error(`the state file ${this.path} stayed locked by another process (${lock})`);
      else await sleep(20);
    }
    try {
      return await task();
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  /**
   * tus-js-client's URL storage for one file, backed by this state file: one entry per
   * fingerprint, so its storage key is the fingerprint. Saving never fails the upload (tus-js-client
   * does not catch it); `onSaveError` hears about it instead, and the upload just cannot resume.
   */
  urlStorageFor(identity: FileIdentity, onSaveError: (error: unknown) => void): UrlStorage {
    const toPrevious = (fingerprint: string, entry: StateEntry): PreviousUpload => ({
      size: entry.size,
      metadata: { ...entry.metadata },
      creationTime: entry.creationTime,
      urlStorageKey: fingerprint,
      uploadUrl: entry.uploadUrl,
      parallelUploadUrls: entry.parallelUploadUrls ? [...entry.parallelUploadUrls] : null,
    });
    return {
      findAllUploads: async () => Object.entries(await this.all()).map(([key, entry]) => toPrevious(key, entry)),
      findUploadsByFingerprint: async (fingerprint) => {
        const entry = await this.find(fingerprint);
        return entry ? [toPrevious(fingerprint, entry)] : [];
      },
      removeUpload: async (key) => {
        await this.remove(key).catch(onSaveError);
      },
      addUpload: async (fingerprint, upload) => {
        const entry: StateEntry = {
          path: path.resolve(identity.path),
          size: identity.size,
          mtimeMs: identity.mtimeMs,
          endpoint: identity.endpoint,
          uploadUrl: upload.uploadUrl ?? null,
          parallelUploadUrls: upload.parallelUploadUrls ? [...upload.parallelUploadUrls] : null,
          metadata: { ...upload.metadata },
          creationTime: new Date(this.now()).toISOString(),
        };
        await this.put(fingerprint, entry).catch(onSaveError);
        return fingerprint;
      },
    };
  }
}
