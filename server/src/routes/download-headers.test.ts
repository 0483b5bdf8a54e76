import { parse } from 'content-disposition';
import { describe, expect, it } from 'vitest';
import { downloadHeaders, sanitizeFilename } from './download-headers.js';

/** The filename a browser would save as, read back from the header. */
function savedName(header: string): string | undefined {
  return parse(header).parameters.filename;
}

describe('sanitizeFilename', () => {
  it.each([
    ['report.pdf', 'report.pdf'],
    ['my holiday video.mp4', 'my holiday video.mp4'],
    ['../../etc/passwd', '_.._etc_passwd'],
    ['/etc/passwd', '_etc_passwd'],
    ['..\\..\\windows\\system32', '_.._windows_system32'],
    ['a/b\\c', 'a_b_c'],
    ['.htaccess', 'htaccess'],
    ['  .. hidden', 'hidden'],
    ['name\u0000.txt', 'name.txt'],
    ['line\r\nbreak.txt', 'linebreak.txt'],
    ['tab\tbell\u0007del\u007f.txt', 'tabbelldel.txt'],
    ['c1\u0085control\u009f.txt', 'c1control.txt'],
    ['trailing space   ', 'trailing space'],
    ['say "hi".txt', 'say "hi".txt'],
    ['résumé.pdf', 'résumé.pdf'],
    ['e\u0301.txt', 'é.txt'],
  ])('%j → %j', (input, expected) => {
    expect(sanitizeFilename(input)).toBe(expected);
  });

  it.each(['', '   ', '...', '\u0000\u0001', '. . .'])('%j leaves nothing', (input) => {
    expect(sanitizeFilename(input)).toBeUndefined();
  });

  it('keeps at most 255 characters, counting code points', () => {
    expect(sanitizeFilename('a'.repeat(1000))).toBe('a'.repeat(255));
    const emoji = sanitizeFilename('😀'.repeat(300));
    expect(Array.from(emoji!)).toHaveLength(255);
    expect(emoji).toBe('😀'.repeat(255));
  });
});

describe('downloadHeaders', () => {
  it('serves a download without metadata as an anonymous attachment', () => {
    expect(downloadHeaders(undefined)).toEqual({ 'Content-Type': 'application/octet-stream', 'Content-Disposition': 'attachment' });
    expect(downloadHeaders({})).toEqual({ 'Content-Type': 'application/octet-stream', 'Content-Disposition': 'attachment' });
    expect(downloadHeaders({ filename: null, filetype: null })).toEqual({ 'Content-Type': 'application/octet-stream', 'Content-Disposition': 'attachment' });
  });

  it.each(['image/png', 'image/jpeg', 'video/mp4', 'audio/mpeg', 'text/plain'])('shows %s inline with its type', (type) => {
    const headers = downloadHeaders({ filename: 'x', filetype: type });
    expect(headers['Content-Type']).toBe(type);
    expect(headers['Content-Disposition']).toMatch(/^inline; filename=/);
    expect(savedName(headers['Content-Disposition'])).toBe('x');
  });

  it('normalizes the declared type before deciding', () => {
    expect(downloadHeaders({ filetype: 'IMAGE/PNG; charset=binary' })['Content-Type']).toBe('image/png');
    expect(downloadHeaders({ filetype: ' image/png ' })['Content-Type']).toBe('image/png');
    expect(downloadHeaders({ filetype: 'text/plain; charset=utf-8' })['Content-Type']).toBe('text/plain');
  });

  it.each([
    'text/html',
    'TEXT/HTML',
    'image/svg+xml',
    'application/pdf',
    'application/xhtml+xml',
    'text/xml',
    'application/javascript',
    'text/javascript',
    'application/x-shockwave-flash',
    'multipart/x-mixed-replace',
    'not a type',
    '',
  ])('sends %j as an opaque attachment', (type) => {
    const headers = downloadHeaders({ filename: 'page.html', filetype: type });
    expect(headers['Content-Type']).toBe('application/octet-stream');
    expect(headers['Content-Disposition']).toMatch(/^attachment; filename=/);
    expect(parse(headers['Content-Disposition']).type).toBe('attachment');
    expect(savedName(headers['Content-Disposition'])).toBe('page.html');
  });

  it('puts a sanitized filename in the header', () => {
    const header = downloadHeaders({ filename: '../../etc/passwd' })['Content-Disposition'];
    expect(header).toMatch(/^attachment; filename=/);
    expect(header).not.toContain('/');
    expect(savedName(header)).toBe('_.._etc_passwd');
  });

  it('escapes quotes so the header still parses to the same name', () => {
    const header = downloadHeaders({ filename: 'say "hi".txt' })['Content-Disposition'];
    expect(header).toBe('attachment; filename="say \\"hi\\".txt"');
    expect(savedName(header)).toBe('say "hi".txt');
  });

  it('never lets a filename break the header', () => {
    const header = downloadHeaders({ filename: 'evil\r\nSet-Cookie: a=b\r\n.txt' })['Content-Disposition'];
    // eslint-disable-next-line no-control-regex -- asserting the absence of control characters
    expect(header).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(savedName(header)).toBe('evilSet-Cookie: a=b.txt');
  });

  it('sends non-ASCII names with an ASCII fallback and filename*', () => {
    const header = downloadHeaders({ filename: 'résumé.pdf', filetype: 'application/pdf' })['Content-Disposition'];
    expect(header).toBe('attachment; filename="r?sum?.pdf"; filename*=UTF-8\'\'r%C3%A9sum%C3%A9.pdf');
    expect(header).toMatch(/^[\u0020-\u007e]+$/);
    expect(savedName(header)).toBe('résumé.pdf');
    const cjk = downloadHeaders({ filename: '写真.png', filetype: 'image/png' })['Content-Disposition'];
    expect(cjk.startsWith('inline; ')).toBe(true);
    expect(savedName(cjk)).toBe('写真.png');
  });

  it('drops a filename that sanitizes to nothing', () => {
    expect(downloadHeaders({ filename: '...' })['Content-Disposition']).toBe('attachment');
  });
});
