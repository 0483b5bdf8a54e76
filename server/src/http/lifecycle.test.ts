import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UploadBody } from './upload-body.js';
import { corsHeaders } from './cors.js';
import { ServerLifecycle } from './lifecycle.js';

describe('ServerLifecycle', () => {
  it('counts tracked bodies and forgets them when untracked', () => {
    const lifecycle = new ServerLifecycle();
    const sources = [new PassThrough(), new PassThrough()];
    const untrack = sources.map((source) => lifecycle.track(new UploadBody(source, 60_000)));
    expect(lifecycle.activeUploads).toBe(2);
    untrack[0]!();
    expect(lifecycle.activeUploads).toBe(1);
    untrack[0]!();
    expect(lifecycle.activeUploads).toBe(1);
    untrack[1]!();
    expect(lifecycle.activeUploads).toBe(0);
    for (const source of sources) source.destroy();
  });

  it("beginShutdown drains and cuts every body in flight with 'shutdown'", () => {
    const lifecycle = new ServerLifecycle();
    const sources = [new PassThrough(), new PassThrough()];
    const bodies = sources.map((source) => new UploadBody(source, 60_000));
    for (const body of bodies) lifecycle.track(body);
    expect(lifecycle.isDraining).toBe(false);
    lifecycle.beginShutdown();
    expect(lifecycle.isDraining).toBe(true);
    for (const body of bodies) {
      expect(body.isFinished).toBe(true);
      expect(body.cutReason).toBe('shutdown');
    }
    for (const source of sources) source.destroy();
  });
});

describe('corsHeaders', () => {
  it('allows any origin with *', () => {
    const headers = corsHeaders({ origins: '*' }, 'https://x.example.com');
    expect(headers['Access-Control-Allow-Origin']).toBe('*');
    expect(headers['Access-Control-Expose-Headers']).toContain('Upload-Offset');
    expect(corsHeaders({ origins: '*' }, null)['Access-Control-Allow-Origin']).toBe('*');
  });

  it('echoes only a listed origin, and always varies on Origin', () => {
    const cors = { origins: ['https://a.example.com', 'https://b.example.com'] };
    expect(corsHeaders(cors, 'https://b.example.com')).toMatchObject({ 'Access-Control-Allow-Origin': 'https://b.example.com', Vary: 'Origin' });
    expect(corsHeaders(cors, 'https://evil.example.com')).toEqual({ Vary: 'Origin' });
    expect(corsHeaders(cors, 'https://a.example.com.evil.com')).toEqual({ Vary: 'Origin' });
    expect(corsHeaders(cors, undefined)).toEqual({ Vary: 'Origin' });
    expect(corsHeaders(cors, 'null')).toEqual({ Vary: 'Origin' });
  });
});
