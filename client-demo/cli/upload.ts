import fs from 'node:fs';
import path from 'node:path';
import { Upload, type HttpRequest, type HttpResponse, type PreviousUpload } from 'tus-js-client';
import type { LocalFile } from './discover.js';
import { describeFailure, isRetryable, type Failure } from './failure.js';
import { createHttpStack, STALL_TIMEOUT_MS } from './http-stack.js';
import { mediaTypeOf } from './media-type.js';
import { percentOf, type ProgressReporter } from './progress.js';
import { fingerprintOf, type FileIdentity, type StateFile } from './state-file.js';
import { formatBytes } from './units.js';

export type UploadSettings = Readonly<{
  endpoint: string;
  chunkSize: number;
  /** Connections for this file; >1 only when the server advertises concatenation. */
  parallel: number;
  headers: Readonly<Record<string, string>>;
  /** The user's metadata, on top of filename, filetype (and relativePath for files from a folder). */
  metadata: Readonly<Record<string, string>>;
  retryDelays: readonly number[];
  stallTimeoutMs?: number;
}>;

export type UploadResult =
  | Readonly<{ kind: 'done'; url: string; sentThisRun: number; seconds: number }>
  | Readonly<{ kind: 'failed'; failure: Failure; /** The state file still holds the upload URL: a rerun resumes. */ resumable: boolean }>
  | Readonly<{ kind: 'aborted'; /** Bytes sent (not all acknowledged) when it stopped. */ sent: number }>;

export type UploadDeps = Readonly<{
  state: StateFile;
  reporter: ProgressReporter;
  /** Aborting stops the upload where it is and keeps its state (Ctrl-C). */
  signal: AbortSignal;
  now?: () => number;
}>;

/** The metadata sent with a file: filename, filetype, relativePath, then the user's. */
export function metadataFor(file: LocalFile, extra: Readonly<Record<string, string>>): Record<string, string> {
  const filename = path.basename(file.path);
  return {
    filename,
    filetype: mediaTypeOf(filename),
    ...(file.relativePath !== undefined ? { relativePath: file.relativePath } : {}),
    ...extra,
  };
}

const STATUS_WORDS: Readonly<Record<number, string>> = { 404: 'Not Found', 410: 'Gone' };

/**
 * Uploads one file with tus-js-client, resuming from the state file when it holds an upload
 * URL for this file's fingerprint. The file is read by path in slices of at most `chunkSize`
 * (tus-js-client's FileSource over an fs.ReadStream), so memory does not grow with its size.
 * Resolves (never rejects for an upload failure) with what happened.
 */
export async function uploadFile(file: LocalFile, settings: UploadSettings, deps: UploadDeps): Promise<UploadResult> {
  const { state, reporter, signal } = deps;
  const now = deps.now ?? Date.now;
  const identity: FileIdentity = { path: file.path, size: file.size, mtimeMs: file.mtimeMs, endpoint: settings.endpoint };
  const fingerprint = fingerprintOf(identity);
  const notice = (text: string) => reporter.notice(text);

  let saveFailed = false;
  const storage = state.urlStorageFor(identity, (error) => {
    if (saveFailed) return;
    saveFailed = true;
    notice(`warning: cannot save the upload URL of ${file.name} in ${state.path} (${(error as Error).message}); if this upload stops, it starts over`);
  });
  const [previous]: (PreviousUpload | undefined)[] = await storage.findUploadsByFingerprint(fingerprint);

  let parallel = settings.parallel;
  if (previous?.parallelUploadUrls) {
    parallel = previous.parallelUploadUrls.length;
  } else if (previous?.uploadUrl && parallel > 1) {
    // tus-js-client would start a new parallel upload and leave this one behind.
    notice(`${file.name} was started over one connection; it resumes over one`);
    parallel = 1;
  }

  if (signal.aborted) return { kind: 'aborted', sent: 0 };

  // Opened but never read: tus-js-client takes its path and reads slices of it, where a read
  // error surfaces; an error of this stream alone must not crash the process.
  const stream = fs.createReadStream(file.path);
  stream.on('error', () => undefined);
  const progress = reporter.start(file.name, file.size);
  const started = now();
  let firstOffset: number | undefined;
  let lastSent = 0;

  // Announce a resume once the server has said where the earlier upload stands.
  const expectedHeads = previous?.parallelUploadUrls?.length ?? 1;
  let announced = previous === undefined;
  const offsets = new Map<string, number>();
  const gone: number[] = [];
  const announceResume = (req: HttpRequest, res: HttpResponse) => {
    if (announced || req.getMethod() !== 'HEAD') return;
    const status = res.getStatus();
    if (status >= 200 && status < 300) offsets.set(req.getURL(), Number.parseInt(res.getHeader('Upload-Offset') ?? '0', 10) || 0);
    else if (status >= 400 && status < 500 && status !== 423) gone.push(status);
    else return; // locked or a server error: tus-js-client retries, the answer comes later
    if (offsets.size + gone.length < expectedHeads) return;
    announced = true;
    if (offsets.size === 0) {
      // tus-js-client forgets the URL after any 4xx and creates a new upload.
      const status = gone[0] ?? 404;
      const words = STATUS_WORDS[status];
      notice(words ? `the server no longer has the earlier upload of ${file.name} (${status} ${words}); starting over` : `the server refused to resume the earlier upload of ${file.name} (${status}); starting over`);
      return;
    }
    const offset = [...offsets.values()].reduce((sum, value) => sum + value, 0);
    notice(`resuming ${file.name} from byte ${offset} (${formatBytes(offset)}, ${percentOf(offset, file.size)}%)`);
    if (gone.length > 0) notice(`${gone.length} of its ${expectedHeads} parts are gone from the server and start over`);
  };

  let retrying = false;
  const retryCount = settings.retryDelays.length;

  return new Promise<UploadResult>((resolve) => {
    let settled = false;
    const finish = (result: UploadResult) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      stream.destroy();
      progress.end();
      resolve(result);
    };

    const upload = new Upload(
      // tus-js-client's Node build takes an fs.ReadStream (its types only list browser inputs).
      stream as unknown as Buffer,
      {
        endpoint: settings.endpoint,
        chunkSize: settings.chunkSize,
        parallelUploads: parallel,
        headers: { ...settings.headers },
        metadata: metadataFor(file, settings.metadata),
        retryDelays: [...settings.retryDelays],
        urlStorage: storage,
        fingerprint: async () => fingerprint,
        storeFingerprintForResuming: true,
        // Removed by us below, awaited, so the state is right even when the process exits at once.
        removeFingerprintOnSuccess: false,
        httpStack: createHttpStack(settings.stallTimeoutMs ?? STALL_TIMEOUT_MS),
        onProgress: (sent) => {
          firstOffset ??= sent;
          lastSent = sent;
          progress.update(sent);
        },
        onAfterResponse: (req, res) => {
          announceResume(req, res);
          if (retrying && res.getStatus() >= 200 && res.getStatus() < 300) {
            retrying = false;
            notice(`${file.name}: the server answers again`);
          }
        },
        onShouldRetry: (error, attempt, options) => {
          const retry = isRetryable(error);
          if (retry) {
            retrying = true;
            const delay = options.retryDelays?.[attempt] ?? 0;
            notice(`${file.name}: ${describeFailure(error).message}; retry ${attempt + 1} of ${retryCount} in ${delay < 1000 ? `${delay} ms` : `${delay / 1000} s`}`);
          }
          return retry;
        },
        onError: (error) => {
          void (async () => {
            const failure = describeFailure(error);
            // An upload the server no longer has cannot be resumed: do not keep pointing at it.
            if (failure.status === 404 || failure.status === 410) await state.remove(fingerprint).catch(() => undefined);
            await state.flush();
            const resumable = !saveFailed && (await state.find(fingerprint).catch(() => undefined)) !== undefined;
            finish({ kind: 'failed', failure, resumable });
          })();
        },
        onSuccess: () => {
          void (async () => {
            await state.remove(fingerprint).catch((error: unknown) => notice(`warning: cannot remove ${file.name} from ${state.path} (${(error as Error).message})`));
            finish({ kind: 'done', url: upload.url ?? '', sentThisRun: file.size - (firstOffset ?? 0), seconds: (now() - started) / 1000 });
          })();
        },
      },
    );

    function onAbort() {
      void upload.abort().then(async () => {
        await state.flush();
        finish({ kind: 'aborted', sent: lastSent });
      });
    }
    signal.addEventListener('abort', onAbort, { once: true });
    if (previous) upload.resumeFromPreviousUpload(previous);
    upload.start();
  });
}
