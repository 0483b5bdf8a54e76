/**
 * tus-upload: uploads files and folders to a tus server, resuming where a run stopped.
 *
 *   npm run upload -- ./video.mp4 --endpoint http://localhost:8080/files/
 *   npx tus-upload ./videos --endpoint http://localhost:8080/files/ --parallel 4
 *
 * This file wires the parts together: arguments (args.ts), the files (discover.ts), the state
 * file (state-file.ts), progress (progress.ts) and one upload at a time (upload.ts).
 */
import os from 'node:os';
import { parseCliArgs, retryDelays, USAGE, USAGE_HINT, type CliOptions } from './args.js';
import { discoverFiles, type Discovery, type LocalFile } from './discover.js';
import { failureLine } from './failure.js';
import { ProgressReporter, type Output } from './progress.js';
import { fetchServerInfo } from './server-info.js';
import { StateFile } from './state-file.js';
import { formatBytes, formatElapsed, formatRate } from './units.js';
import { uploadFile, type UploadResult } from './upload.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130, terminated: 143 } as const;

type Io = Readonly<{
  stdout: Output;
  stderr: Output;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  homeDir: string;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM, with the signal's name as reason. */
  signal: AbortSignal;
}>;

/** Connections per file: what was asked for if the server advertises concatenation, else 1 (with a notice). */
async function connectionsPerFile(options: CliOptions, reporter: ProgressReporter): Promise<number> {
  if (options.parallel <= 1) return 1;
  const asked = `--parallel ${options.parallel}`;
  try {
    const info = await fetchServerInfo(options.endpoint, options.headers);
    if (info.extensions.includes('concatenation')) return options.parallel;
    reporter.notice(`${asked}: the server does not support concatenation (Tus-Extension: ${info.extensions.join(',') || 'none'}); uploading over one connection`);
  } catch (error) {
    reporter.notice(`${asked}: cannot ask the server whether it supports concatenation (${(error as Error).message}); uploading over one connection`);
  }
  return 1;
}

function skippedNotice(skipped: Discovery['skipped']): string | undefined {
  const parts = [
    skipped.hidden > 0 ? `${skipped.hidden} hidden (--include-hidden)` : '',
    skipped.symlinks > 0 ? `${skipped.symlinks} symbolic link${skipped.symlinks === 1 ? '' : 's'} (--follow-symlinks)` : '',
    skipped.special > 0 ? `${skipped.special} special file${skipped.special === 1 ? '' : 's'}` : '',
  ].filter((part) => part !== '');
  return parts.length > 0 ? `skipped ${parts.join(', ')}` : undefined;
}

const stoppedBy = (signal: AbortSignal) => (signal.reason === 'SIGTERM' ? 'SIGTERM' : 'Ctrl-C');

function doneLine(file: LocalFile, result: Extract<UploadResult, { kind: 'done' }>): string {
  const size = formatBytes(file.size);
  const speed = `${formatElapsed(result.seconds)}, ${formatRate(result.sentThisRun / Math.max(result.seconds, 0.001))}`;
  let how = `${size} in ${speed}`;
  if (file.size === 0) how = size;
  else if (result.sentThisRun === 0) how = `${size}, already complete on the server`;
  else if (result.sentThisRun < file.size) how = `${size}; ${formatBytes(result.sentThisRun)} sent in ${speed}`;
  return `uploaded ${file.name} (${how}): ${result.url}`;
}

async function run(argv: readonly string[], io: Io): Promise<number> {
  const parsed = parseCliArgs(argv, { env: io.env, homeDir: io.homeDir, cwd: io.cwd });
  if (parsed.kind === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (parsed.kind === 'error') {
    io.stderr.write(`tus-upload: ${parsed.message}\n${USAGE_HINT}\n`);
    return EXIT.usage;
  }
  const options = parsed.options;
  const reporter = new ProgressReporter(io.stdout, ProgressReporter.modeFor(io.stdout, options.quiet));

  const found = await discoverFiles(options.paths, { cwd: io.cwd, includeHidden: options.includeHidden, followSymlinks: options.followSymlinks });
  if (found.problems.length > 0) {
    for (const problem of found.problems) io.stderr.write(`tus-upload: ${problem}\n`);
    io.stderr.write(`Nothing was uploaded. ${USAGE_HINT}\n`);
    return EXIT.usage;
  }
  const skipped = skippedNotice(found.skipped);
  if (skipped) reporter.notice(skipped);
  if (found.files.length === 0) {
    reporter.notice('nothing to upload');
    return EXIT.ok;
  }

  const state = new StateFile(options.stateFile, {
    onCorrupt: (movedTo) => reporter.notice(`warning: ${options.stateFile} was not a state file of this uploader; moved it to ${movedTo}`),
  });
  try {
    await state.ensureWritable();
  } catch (error) {
    io.stderr.write(`tus-upload: cannot write the state file ${options.stateFile} (${(error as Error).message}); choose another with --state-file\n`);
    return EXIT.usage;
  }

  const parallel = await connectionsPerFile(options, reporter);
  const settings = {
    endpoint: options.endpoint,
    chunkSize: options.chunkSize,
    parallel,
    headers: options.headers,
    metadata: options.metadata,
    retryDelays: retryDelays(options.retries),
  };

  let uploaded = 0;
  let failed = 0;
  for (const [index, file] of found.files.entries()) {
    if (io.signal.aborted) break;
    if (found.files.length > 1) reporter.notice(`[${index + 1}/${found.files.length}] ${file.name}`);
    let result: UploadResult;
    try {
      result = await uploadFile(file, settings, { state, reporter, signal: io.signal });
    } catch (error) {
      // Reading the state file or the file itself failed before tus-js-client took over.
      result = { kind: 'failed', failure: { kind: 'other', status: undefined, message: (error as Error).message }, resumable: false };
    }
    if (result.kind === 'done') {
      uploaded += 1;
      if (options.quiet) io.stdout.write(`${result.url}\n`);
      else reporter.notice(doneLine(file, result));
      continue;
    }
    if (result.kind === 'aborted') {
      io.stderr.write(`tus-upload: stopped by ${stoppedBy(io.signal)}: ${file.name} at ${formatBytes(result.sent)} of ${formatBytes(file.size)}; run the same command again to resume\n`);
      break;
    }
    failed += 1;
    const { failure, resumable } = result;
    const hint = resumable
      ? `; its upload URL is kept in ${options.stateFile}: run the same command again to resume`
      : failure.kind === 'network' || failure.kind === 'server'
        ? '; run the same command again to retry'
        : '';
    io.stderr.write(`tus-upload: ${failureLine(file.name, failure)}${hint}\n`);
    // Without a server to talk to, the next files would only wait through the same retries.
    if (failure.kind === 'network' && index < found.files.length - 1) {
      io.stderr.write(`tus-upload: stopping: ${found.files.length - index - 1} more file(s) not attempted\n`);
      break;
    }
  }
  await state.flush();
  if (io.signal.aborted) return io.signal.reason === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;

  if (found.files.length > 1) {
    const rest = found.files.length - uploaded - failed;
    reporter.notice(`${uploaded} of ${found.files.length} files uploaded${failed > 0 ? `, ${failed} failed` : ''}${rest > 0 ? `, ${rest} not attempted` : ''}`);
  }
  return failed > 0 || uploaded < found.files.length ? EXIT.failed : EXIT.ok;
}

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // A second Ctrl-C does not wait for the state file.
    if (controller.signal.aborted) process.exit(signal === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted);
    controller.abort(signal);
  });
}
process.on('uncaughtException', (error) => {
  process.stderr.write(`\ntus-upload: unexpected error: ${error.message}; run the same command again to resume\n`);
  process.exit(EXIT.failed);
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  // The CLI's own settings: TUS_ENDPOINT and XDG_STATE_HOME.
  env: process.env,
  // `npm run upload` runs in the repository folder; INIT_CWD is where the user typed it.
  cwd: (process.env.npm_lifecycle_event === 'upload' && process.env.INIT_CWD) || process.cwd(),
  homeDir: os.homedir(),
  signal: controller.signal,
});
// Keep-alive sockets and timers of an aborted upload must not hold the exit.
process.exit(code);
