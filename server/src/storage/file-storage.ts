import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FileStore } from '@tus/file-store';
import { ERRORS, isPathInsideDirectory, type Upload } from '@tus/utils';
import { AtomicFileKvStore } from './atomic-file-kv-store.js';
import { bytesDeleted, DISCARDED_REASON } from './bytes-deleted.js';
import { isStorageFull, toHttpError } from './storage-errors.js';
import { ARTIFACT_NAME, type ArtifactStore, type ByteRange, type UploadStorage } from './types.js';
import { hideCompleteCreationDate } from '../uploads/upload-state.js';

/** Ids of expired uploads live here as empty files so we can keep answering 410 Gone. */
const TOMBSTONE_DIR = '.expired';
/** Ids of uploads whose processing reached an end state, as empty files: the sweeps skip them from one listing. */
const SETTLED_DIR = '.settled';
/** Files made from an upload (its poster), one directory per upload id. */
const ARTIFACT_DIR = '.artifacts';

/**
 * @tus/file-store with the corrections we need:
 * - a finished upload never expires: `getUpload`, which only @tus/server calls, hides its
 *   creation date (hideCompleteCreationDate); `storedUpload` (the rest of the server:
 *   hooks, processing, downloads) keeps it.
 * - creating an upload does not make the directory again (upstream's mkdir on every POST):
 *   it was made at startup, and is made again only if it vanished.
 * - "If a Client does attempt to resume an upload which has since been removed by the
 *   Server, the Server SHOULD respond with the 404 Not Found or 410 Gone status. The
 *   latter one SHOULD be used if the Server is keeping track of expired uploads."
 *   We keep track: expired ids leave a tombstone, and they answer 410.
 */
class TrackedFileStore extends FileStore {
  constructor(private readonly root: string, expirationPeriodInMilliseconds: number) {
    super({ directory: root, expirationPeriodInMilliseconds, configstore: new AtomicFileKvStore(root) });
    // Tus-Extension must not promise expiration when uploads never expire (UPLOAD_EXPIRY=0).
    if (expirationPeriodInMilliseconds <= 0) this.extensions = this.extensions.filter((extension) => extension !== 'expiration');
    // The tus routes verify Upload-Checksum (header or trailer) before any byte reaches the store;
    // concatenation is the upload core's (server/src/uploads/concatenation.ts).
    this.extensions = [...this.extensions, 'checksum', 'checksum-trailer', 'concatenation'];
  }

  /** The upload's data file (its record is `<id>.json` beside it). */
  dataPath(id: string): string {
    const file = path.join(this.root, id);
    if (!isPathInsideDirectory(this.root, file) || path.basename(file) !== id) throw ERRORS.FILE_NOT_FOUND;
    return file;
  }

  tombstonePath(id: string): string {
    return markerPath(this.root, TOMBSTONE_DIR, id);
  }

  settledPath(id: string): string {
    return markerPath(this.root, SETTLED_DIR, id);
  }

  /**
   * Upstream's write, except for its errors: @tus/file-store answers every failure with
   * FILE_WRITE_ERROR (a 503), and a full disk deserves its own answer (507), so its error is
   * kept. Either way the bytes written before the failure stay in the file, and the file's
   * size is the offset HEAD reports.
   */
  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    // The file stream counts what reached the file: no counting stage per chunk in between.
    const destination = fs.createWriteStream(this.dataPath(id), { flags: 'r+', start: offset });
    try {
      await pipeline(readable, destination);
    } catch (error) {
      throw isStorageFull(error) ? error : ERRORS.FILE_WRITE_ERROR;
    }
    return offset + destination.bytesWritten;
  }

  /**
   * The settled marker is a hard link to the upload's record, not a file of its own: on a busy
   * ext4 a new file costs most in the kernel's search for a free inode, and processing a small
   * upload already makes several. (The record replaced later keeps the old inode alive, a few
   * hundred bytes, until the marker goes with the upload.) Where hard links are refused, it is an
   * empty file. No record, no marker: the upload is gone, and a marker would outlive it.
   */
  async markSettled(id: string): Promise<void> {
    const marker = this.settledPath(id);
    const record = `${this.dataPath(id)}.json`;
    try {
      await fsp.link(record, marker);
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      if (code === 'EEXIST') return;
      if (code === 'ENOENT') {
        if (!(await exists(record))) return;
        // The markers' directory vanished (made at startup): make it again.
        await fsp.mkdir(path.dirname(marker), { recursive: true });
      }
      await fsp.writeFile(marker, '');
    }
  }

  artifactsPath(id: string): string {
    return markerPath(this.root, ARTIFACT_DIR, id);
  }

  /** The settled marker and the artifacts go with the upload, so an id used again is processed again. */
  override async remove(id: string): Promise<void> {
    await this.removeKeepingArtifacts(id);
    await fsp.rm(this.artifactsPath(id), { recursive: true, force: true });
  }

  /** The data file, the record and the settled marker (DELETE_AFTER_PROCESSING keeps the artifacts). */
  async removeKeepingArtifacts(id: string): Promise<void> {
    await super.remove(id);
    await fsp.rm(this.settledPath(id), { force: true });
  }

  /** The upload as stored, creation date included; an expired id is FILE_NO_LONGER_EXISTS. */
  async storedUpload(id: string): Promise<Upload> {
    try {
      return await super.getUpload(id);
    } catch (error) {
      // FILE_NO_LONGER_EXISTS too: between the data file's removal and its record's, upstream
      // reads the record and finds no data; the tombstone (written first) says why it went.
      if ((error === ERRORS.FILE_NOT_FOUND || error === ERRORS.FILE_NO_LONGER_EXISTS) && (await exists(this.tombstonePath(id)))) {
        const reason = await fsp.readFile(this.tombstonePath(id), 'utf8').catch(() => '');
        throw reason === DISCARDED_REASON ? bytesDeleted(id) : ERRORS.FILE_NO_LONGER_EXISTS;
      }
      throw error;
    }
  }

  /**
   * Upstream's create without its mkdir per upload (a round trip to the disk threads on every
   * POST): upload ids hold no slash, so every data file lives in the root made at startup.
   */
  override async create(upload: Upload): Promise<Upload> {
    const file = path.join(this.root, upload.id);
    // Anything but a plain name (a slash, "..") goes through upstream and its checks.
    if (path.basename(file) !== upload.id) return super.create(upload);
    try {
      await fsp.writeFile(file, '');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // The directory vanished (deleted under a running server): make it again, as upstream would.
      await fsp.mkdir(this.root, { recursive: true });
      await fsp.writeFile(file, '');
    }
    await this.configstore.set(upload.id, upload);
    upload.storage = { type: 'file', path: file };
    return upload;
  }

  /** For @tus/server: a finished upload without its creation date, so it never expires. */
  override async getUpload(id: string): Promise<Upload> {
    return hideCompleteCreationDate(await this.storedUpload(id));
  }
}

function markerPath(root: string, directory: string, id: string): string {
  const file = path.join(root, directory, id);
  if (!isPathInsideDirectory(path.join(root, directory), file)) throw ERRORS.FILE_NOT_FOUND;
  return file;
}

/** Artifacts as files under STORAGE_DIR/.artifacts/<id>/, each written to a temporary name and renamed. */
function fileArtifacts(store: TrackedFileStore): ArtifactStore {
  const fileOf = (id: string, name: string) => {
    if (!ARTIFACT_NAME.test(name)) throw new Error(`invalid artifact name ${JSON.stringify(name)}`);
    return path.join(store.artifactsPath(id), name);
  };
  return {
    async write(id, name, data) {
      const file = fileOf(id, name);
      await fsp.mkdir(path.dirname(file), { recursive: true });
      const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      await fsp.writeFile(temp, data);
      await fsp.rename(temp, file);
    },
    async read(id, name) {
      try {
        return await fsp.readFile(fileOf(id, name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    async remove(id) {
      await fsp.rm(store.artifactsPath(id), { recursive: true, force: true });
    },
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

export async function createFileStorage(options: { directory: string; uploadExpiryMs: number }): Promise<UploadStorage> {
  const { directory } = options;
  await fsp.mkdir(path.join(directory, TOMBSTONE_DIR), { recursive: true });
  await fsp.mkdir(path.join(directory, SETTLED_DIR), { recursive: true });
  const store = new TrackedFileStore(directory, options.uploadExpiryMs);
  const configstore = new AtomicFileKvStore(directory);

  /** Two directory listings, whatever the number of uploads: no read per upload. */
  async function listUnsettled(): Promise<string[]> {
    const [ids, settled] = await Promise.all([configstore.list(), fsp.readdir(path.join(directory, SETTLED_DIR)).catch(() => [])]);
    const done = new Set(settled);
    return ids.filter((id) => !done.has(id));
  }

  return {
    kind: 'file',
    datastore: store,
    getUpload: (id) => store.storedUpload(id).catch(toHttpError),

    // The data file's size is the offset (as upstream's getUpload reads it): one stat, no record read.
    async storedBytes(id: string): Promise<number> {
      try {
        return (await fsp.stat(store.dataPath(id))).size;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        return (await store.storedUpload(id).catch(toHttpError)).offset;
      }
    },

    async read(id: string, range?: ByteRange): Promise<Readable> {
      const upload = await store.storedUpload(id).catch(toHttpError);
      const file = upload.storage?.path;
      if (!file) throw ERRORS.FILE_NOT_FOUND;
      return fs.createReadStream(file, range ? { start: range.start, end: range.end } : {});
    },

    listUploadIds: () => configstore.list(),

    listUnsettled,
    // Telling finished from unfinished takes a read per upload here; the unsettled ones are
    // the unfinished plus the few finished ones still being processed.
    listUnfinished: listUnsettled,

    markSettled: (id) => store.markSettled(id),

    isSettled: (id) => exists(store.settledPath(id)),

    async expire(id: string): Promise<void> {
      await fsp.writeFile(store.tombstonePath(id), '');
      await store.remove(id).catch(async (error: unknown) => {
        // The data file may already be gone (a crash between the two unlinks); drop the record too.
        if (error !== ERRORS.FILE_NOT_FOUND) throw error;
        await configstore.delete(id).catch(() => undefined);
        await fsp.rm(store.settledPath(id), { force: true });
      });
      await fsp.rm(store.artifactsPath(id), { recursive: true, force: true });
    },

    async discardBytes(id: string): Promise<void> {
      await fsp.writeFile(store.tombstonePath(id), DISCARDED_REASON);
      await store.removeKeepingArtifacts(id).catch(async (error: unknown) => {
        if (error !== ERRORS.FILE_NOT_FOUND) throw error;
        await configstore.delete(id).catch(() => undefined);
        await fsp.rm(store.settledPath(id), { force: true });
      });
    },

    artifacts: fileArtifacts(store),

    async checkReady(): Promise<void> {
      // Data files are created in the directory itself, records pass through .tmp: probe both.
      await fsp.mkdir(path.join(directory, '.tmp'), { recursive: true });
      for (const dir of [directory, path.join(directory, '.tmp')]) {
        const probe = path.join(dir, `.ready-${randomBytes(6).toString('hex')}`);
        await fsp.writeFile(probe, 'ok');
        await fsp.rm(probe, { force: true });
      }
    },
  };
}
