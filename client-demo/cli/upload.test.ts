import { describe, expect, it } from 'vitest';
import type { LocalFile } from './discover.js';
import { mediaTypeOf } from './media-type.js';
import { metadataFor } from './upload.js';

const file = (relativePath?: string): LocalFile => ({ path: '/home/ada/videos/Summer Trip.MP4', name: relativePath ?? 'Summer Trip.MP4', relativePath, size: 1, mtimeMs: 1 });

describe('metadataFor', () => {
  it('sends filename and filetype from the file name', () => {
    expect(metadataFor(file(), {})).toEqual({ filename: 'Summer Trip.MP4', filetype: 'video/mp4' });
  });

  it('adds relativePath for a file found in a folder', () => {
    expect(metadataFor(file('videos/Summer Trip.MP4'), {})).toEqual({ filename: 'Summer Trip.MP4', filetype: 'video/mp4', relativePath: 'videos/Summer Trip.MP4' });
  });

  it("lets the user's --metadata win", () => {
    expect(metadataFor(file(), { filetype: 'video/quicktime', album: 'summer' })).toEqual({ filename: 'Summer Trip.MP4', filetype: 'video/quicktime', album: 'summer' });
  });
});

describe('mediaTypeOf', () => {
  it.each([
    ['movie.mp4', 'video/mp4'],
    ['notes.txt', 'text/plain'],
    ['setup.exe', 'application/x-msdownload'],
    ['archive.unknown', 'application/octet-stream'],
    ['no-extension', 'application/octet-stream'],
  ])('%s → %s', (name, type) => {
    expect(mediaTypeOf(name)).toBe(type);
  });
});
