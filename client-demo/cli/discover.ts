import type { Dirent, Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** A regular file to upload, as it was when it was found. */
export type LocalFile = Readonly<{
  /** Absolute path. */
  path: string;
  /** What messages call it: the basename, or for files found in a folder the path from that folder's parent. */
  name: string;
  /** Set for files found in a folder: `name`, sent as `relativePath` metadata. */
  relativePath: string | undefined;
  size: number;
  mtimeMs: number;
}>;

export type DiscoverOptions = Readonly<{
  cwd: string;
  /** Upload entries whose name starts with a dot. */
  includeHidden: boolean;
  /** Follow symbolic links inside folders (a link named on the command line is always followed). */
  followSymlinks: boolean;
}>;

export type Discovery = Readonly<{
  files: readonly LocalFile[];
  /** Paths that cannot be uploaded, in words ("x.mp4: no such file or directory"). */
  problems: readonly string[];
  /** Entries inside folders left out on purpose. */
  skipped: Readonly<{ hidden: number; symlinks: number; special: number }>;
}>;

/** Folders nested deeper than this are reported, not walked (a loop of bind mounts, say). */
const MAX_DEPTH = 64;

function describeError(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `${file}: no such file or directory`;
  if (code === 'EACCES' || code === 'EPERM') return `${file}: permission denied`;
  return `${file}: ${(error as Error).message}`;
}

/**
 * The regular files to upload for the paths on the command line: files as they are, folders
 * walked recursively in name order. Hidden entries, symbolic links and special files
 * (sockets, pipes, devices) inside folders are skipped unless asked for; a file named twice
 * is uploaded once.
 */
export async function discoverFiles(inputs: readonly string[], options: DiscoverOptions): Promise<Discovery> {
  const files: LocalFile[] = [];
  const problems: string[] = [];
  const skipped = { hidden: 0, symlinks: 0, special: 0 };
  const seen = new Set<string>();

  const addFile = async (absolute: string, stats: Stats, relativePath: string | undefined, shown: string) => {
    if (seen.has(absolute)) return;
    try {
      await fs.access(absolute, fs.constants.R_OK);
    } catch (error) {
      problems.push(describeError(shown, error));
      return;
    }
    seen.add(absolute);
    files.push({ path: absolute, name: relativePath ?? path.basename(absolute), relativePath, size: stats.size, mtimeMs: stats.mtimeMs });
  };

  const walk = async (dir: string, relative: string, visited: ReadonlySet<string>, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH) {
      problems.push(`${relative}: folders nested more than ${MAX_DEPTH} deep`);
      return;
    }
    let entries: Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      problems.push(describeError(relative, error));
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.') && !options.includeHidden) {
        skipped.hidden += 1;
        continue;
      }
      const absolute = path.join(dir, entry.name);
      const rel = `${relative}/${entry.name}`;
      let stats: Stats;
      if (entry.isSymbolicLink()) {
        if (!options.followSymlinks) {
          skipped.symlinks += 1;
          continue;
        }
        try {
          stats = await fs.stat(absolute);
        } catch {
          skipped.symlinks += 1; // a dangling link
          continue;
        }
      } else if (entry.isFile() || entry.isDirectory()) {
        try {
          stats = await fs.stat(absolute);
        } catch (error) {
          problems.push(describeError(rel, error)); // removed or made unreadable meanwhile
          continue;
        }
      } else {
        skipped.special += 1;
        continue;
      }
      if (stats.isDirectory()) {
        const real = await fs.realpath(absolute);
        // A link back to a folder we are inside would loop forever.
        if (visited.has(real)) {
          skipped.symlinks += 1;
          continue;
        }
        await walk(absolute, rel, new Set([...visited, real]), depth + 1);
      } else if (stats.isFile()) {
        await addFile(absolute, stats, rel, rel);
      } else {
        skipped.special += 1;
      }
    }
  };

  for (const input of inputs) {
    const absolute = path.resolve(options.cwd, input);
    let stats: Stats;
    try {
      stats = await fs.stat(absolute);
    } catch (error) {
      problems.push(describeError(input, error));
      continue;
    }
    if (stats.isFile()) {
      await addFile(absolute, stats, undefined, input);
    } else if (stats.isDirectory()) {
      const base = path.basename(absolute) || absolute;
      await walk(absolute, base, new Set([await fs.realpath(absolute)]), 0);
    } else {
      problems.push(`${input}: not a regular file or folder`);
    }
  }
  return { files, problems, skipped };
}
