import fs from 'node:fs';
import path from 'node:path';

/**
 * How the media processors run ffprobe and ffmpeg (config.media). Every run is a child
 * process with a time limit and an address-space limit; see run-tool.ts.
 */
export type MediaToolsConfig = Readonly<{
  /** ffprobe: a name looked up in TOOL_PATH, or an absolute path. */
  ffprobe: string;
  ffmpeg: string;
  /** Longest run of one ffprobe or ffmpeg; the whole process group is killed after it. */
  timeoutMs: number;
  /** Address space of one run (prlimit --as), in bytes; 0 for none. */
  memoryBytes: number;
  /** Width of the poster frame, in pixels; its height keeps the video's aspect ratio. */
  posterWidth: number;
}>;

/**
 * The children's whole environment: a fixed PATH and nothing else, so no proxy setting
 * (http_proxy) or locale of the server's reaches ffmpeg, whose http client would honour it.
 */
export const TOOL_PATH = '/usr/local/bin:/usr/bin:/bin';
export const TOOL_ENV: Readonly<Record<string, string>> = { PATH: TOOL_PATH, LC_ALL: 'C' };

/** The executable a tool name stands for (looked up in TOOL_PATH), or undefined when there is none. */
export function findTool(name: string): string | undefined {
  const candidates = path.isAbsolute(name) ? [name] : name.includes('/') ? [] : TOOL_PATH.split(':').map((dir) => path.join(dir, name));
  for (const file of candidates) {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Which of ffprobe and ffmpeg are missing, by the names configured. */
export function missingTools(config: Pick<MediaToolsConfig, 'ffprobe' | 'ffmpeg'>): ('ffprobe' | 'ffmpeg')[] {
  return (['ffprobe', 'ffmpeg'] as const).filter((tool) => findTool(config[tool]) === undefined);
}
