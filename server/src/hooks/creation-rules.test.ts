import { describe, expect, it } from 'vitest';
import { HttpError } from '../errors.js';
import { applyCreationRules, type CreationRules } from './creation-rules.js';

const NONE: CreationRules = { allowedTypes: [], requiredMetadata: [] };

function rejection(rules: CreationRules, metadata: Record<string, string>): HttpError {
  try {
    applyCreationRules(rules, metadata);
  } catch (error) {
    if (error instanceof HttpError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(metadata)} to be rejected`);
}

describe('applyCreationRules', () => {
  it('passes metadata through unchanged without rules, as a copy', () => {
    const metadata = { filename: 'clip.mp4', filetype: 'video/mp4', other: '' };
    const result = applyCreationRules(NONE, metadata);
    expect(result).toEqual(metadata);
    expect(result).not.toBe(metadata);
    expect(applyCreationRules(NONE, {})).toEqual({});
  });

  it('sanitizes the filename without touching the input', () => {
    const metadata = { filename: '../../etc/passwd', filetype: 'text/plain' };
    expect(applyCreationRules(NONE, metadata)).toEqual({ filename: '_.._etc_passwd', filetype: 'text/plain' });
    expect(metadata.filename).toBe('../../etc/passwd');
    expect(applyCreationRules(NONE, { filename: 'a\u0000b\u202Ec.txt' }).filename).toBe('abc.txt');
    expect(applyCreationRules(NONE, { filename: 'C:\\Users\\me\\v.mp4' }).filename).toBe('C:_Users_me_v.mp4');
    expect(Array.from(applyCreationRules(NONE, { filename: `${'é'.repeat(300)}.mp4` }).filename ?? '')).toHaveLength(255);
  });

  it('drops a filename that sanitizes to nothing', () => {
    expect(applyCreationRules(NONE, { filename: ' ... ', filetype: 'video/mp4' })).toEqual({ filetype: 'video/mp4' });
  });

  it('requires REQUIRED_METADATA keys, naming every missing one; empty values count as missing', () => {
    const rules: CreationRules = { allowedTypes: [], requiredMetadata: ['filename', 'filetype', 'owner'] };
    const error = rejection(rules, { filetype: 'video/mp4' });
    expect(error.code).toBe('ERR_MISSING_METADATA');
    expect(error.status).toBe(400);
    expect(error.body).toBe('ERR_MISSING_METADATA: missing required metadata: filename, owner (send it in Upload-Metadata)\n');
    expect(rejection(rules, { filename: 'a', filetype: 'b/c', owner: '' }).message).toContain('missing required metadata: owner');
    // A filename that sanitizes away is missing too.
    expect(rejection(rules, { filename: '...', filetype: 'b/c', owner: 'me' }).message).toContain('missing required metadata: filename');
    expect(applyCreationRules(rules, { filename: 'a', filetype: 'b/c', owner: 'me' })).toEqual({ filename: 'a', filetype: 'b/c', owner: 'me' });
  });

  it('checks the declared filetype against ALLOWED_TYPES (wildcards, case, parameters)', () => {
    const rules: CreationRules = { allowedTypes: ['video/*', 'image/png'], requiredMetadata: [] };
    for (const filetype of ['video/mp4', 'Video/MP4', 'video/quicktime; codecs=avc1', 'image/png', ' image/png ']) {
      expect(applyCreationRules(rules, { filetype }).filetype, filetype).toBe(filetype);
    }
    const refused = rejection(rules, { filetype: 'application/x-msdownload' });
    expect(refused.code).toBe('ERR_TYPE_NOT_ALLOWED');
    expect(refused.status).toBe(415);
    expect(refused.message).toBe('filetype application/x-msdownload is not allowed; allowed: video/*, image/png');
    expect(rejection(rules, { filetype: 'image/jpeg' }).message).toBe('filetype image/jpeg is not allowed; allowed: video/*, image/png');
    // "video" alone or a look-alike prefix is not video/*.
    expect(rejection(rules, { filetype: 'videos/mp4' }).code).toBe('ERR_TYPE_NOT_ALLOWED');
    expect(rejection(rules, { filetype: 'video' }).message).toBe('filetype video is not allowed; allowed: video/*, image/png');
    expect(rejection(rules, { filetype: 'video/' }).code).toBe('ERR_TYPE_NOT_ALLOWED');
    expect(rejection(rules, { filetype: 'video/*' }).code).toBe('ERR_TYPE_NOT_ALLOWED');
    expect(rejection(rules, { filetype: 'video/mp4 x' }).code).toBe('ERR_TYPE_NOT_ALLOWED');
  });

  it('requires a filetype when ALLOWED_TYPES is set', () => {
    const rules: CreationRules = { allowedTypes: ['video/*'], requiredMetadata: [] };
    const cases: Record<string, string>[] = [{}, { filetype: '' }, { filetype: ' ; charset=x' }];
    for (const metadata of cases) {
      const error = rejection(rules, metadata);
      expect(error.status).toBe(415);
      expect(error.message).toBe('filetype metadata is required; allowed: video/*');
    }
  });

  it('keeps the message short when the declared type is huge', () => {
    const error = rejection({ allowedTypes: ['video/*'], requiredMetadata: [] }, { filetype: `application/${'x'.repeat(5000)}` });
    expect(error.message.length).toBeLessThan(200);
  });

  it('reports missing metadata before a disallowed type', () => {
    expect(rejection({ allowedTypes: ['video/*'], requiredMetadata: ['filename'] }, { filetype: 'text/plain' }).code).toBe('ERR_MISSING_METADATA');
  });
});
