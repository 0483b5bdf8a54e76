/**
 * The few RFC 9651 structured field shapes the IETF upload headers use: Booleans
 * (`Upload-Complete: ?1`), Integers (`Upload-Offset: 42`) and the `Upload-Limit` Dictionary.
 * Parameters on an Item (`?1;a=b`) are allowed by RFC 9651 and ignored, as the draft
 * defines none.
 */

/** "Integers have a range of -999,999,999,999,999 to 999,999,999,999,999 inclusive (i.e., up to fifteen digits)". */
const INTEGER = /^-?[0-9]{1,15}$/;

/** The bare Item of a field value: surrounding spaces trimmed, parameters dropped. */
function bareItem(value: string): string | undefined {
  const trimmed = value.trim();
  const semicolon = trimmed.indexOf(';');
  const item = semicolon === -1 ? trimmed : trimmed.slice(0, semicolon);
  // A parameter list must itself look like `;key` or `;key=value`: anything else is malformed.
  if (semicolon !== -1 && !/^(;\s*[a-z*][a-z0-9_.*-]*(=[^;]*)?)+$/.test(trimmed.slice(semicolon))) return undefined;
  return item;
}

/** `?1` → true, `?0` → false; undefined for anything else (`true`, `1`, `?2`, a list). */
export function parseBoolean(value: string): boolean | undefined {
  const item = bareItem(value);
  if (item === '?1') return true;
  if (item === '?0') return false;
  return undefined;
}

export const formatBoolean = (value: boolean): string => (value ? '?1' : '?0');

/** A structured Integer; undefined when malformed (`+1`, `1.0`, `0x10`, sixteen digits). */
export function parseInteger(value: string): number | undefined {
  const item = bareItem(value);
  if (item === undefined || !INTEGER.test(item)) return undefined;
  return Number(item);
}

/** A Dictionary of Integers, as `Upload-Limit` is: `max-size=2147483648, max-age=3600`. */
export function formatIntegerDictionary(members: Readonly<Record<string, number | undefined>>): string {
  return Object.entries(members)
    .filter((entry): entry is [string, number] => entry[1] !== undefined)
    .map(([key, value]) => `${key}=${Math.max(0, Math.floor(value))}`)
    .join(', ');
}
