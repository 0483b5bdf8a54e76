/**
 * Makes a client-supplied filename safe for a header and for the user's disk: no control
 * characters, no path separators, no leading dots, at most 255 characters.
 */
export function sanitizeFilename(name: string): string | undefined {
  const cleaned = name
    .normalize('NFC')
    // eslint-disable-next-line no-control-regex -- control characters are exactly what we strip
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '')
    // Bidirectional overrides make "invoice\u202Efdp.exe" display as "invoiceexe.pdf".
    .replace(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/[/\\]/g, '_')
    .replace(/^[\s.]+/, '')
    .trim();
  const limited = Array.from(cleaned).slice(0, 255).join('');
  return limited === '' ? undefined : limited;
}
