import { HttpError } from '../errors.js';

/**
 * The sha256 a client declares for the whole upload at creation, protocol-neutral: the
 * `Repr-Digest` header (RFC 9530) or, for tus clients that can only set metadata, the
 * metadata key `sha256`. Each parser returns the digest as canonical base64, undefined when
 * nothing was declared, or the HttpError (400) the creation must answer.
 */

/** RFC 9530's name for SHA-256 in Repr-Digest ("sha-256", 32 bytes). */
const SHA_256 = 'sha-256';
const SHA256_BYTES = 32;

/** The metadata key tus clients set when they cannot send headers. */
export const SHA256_METADATA_KEY = 'sha256';

const invalid = (message: string) => new HttpError('ERR_INVALID_DIGEST', message);

/** Canonical base64 of `bytes` bytes, or undefined unless `text` is exactly that (padding optional, as RFC 9651 asks). */
function canonicalBase64(text: string, bytes: number): string | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const decoded = Buffer.from(text, 'base64');
  const canonical = decoded.toString('base64');
  // Trailing bits that decoding drops would make two texts name one digest: refuse them.
  if (decoded.length !== bytes || canonical.replace(/=+$/, '') !== text.replace(/=+$/, '')) return undefined;
  return canonical;
}

/** A dictionary member: a byte sequence's base64 text, or any other value. */
type Member = Readonly<{ bytes: string } | { other: true }>;

/**
 * A structured-field dictionary (RFC 9651 §4.2.2), reduced to what a digest needs: each
 * member's key and, when its value is a byte sequence, that sequence's text; any other
 * value (a token, a number, an inner list, parameters) is parsed and kept as `other`.
 * Throws a plain Error with the reason when the text is not a dictionary.
 */
function parseDictionary(text: string): Map<string, Member> {
  const input = text.trim();
  const members = new Map<string, Member>();
  let at = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${at + 1}`);
  };
  const match = (pattern: RegExp): string | undefined => {
    pattern.lastIndex = at;
    const found = pattern.exec(input);
    if (!found) return undefined;
    at += found[0].length;
    return found[0];
  };
  /** Consumes what `pattern` matches here, or fails with `what`. */
  const skip = (pattern: RegExp, what: string): void => {
    if (match(pattern) === undefined) fail(what);
  };
  const key = () => match(/[a-z*][a-z0-9_\-.*]*/y) ?? fail('a key was expected');

  /** A bare item; the text of a byte sequence, undefined for any other kind. */
  function bareItem(): string | undefined {
    const first = input[at];
    if (first === ':') {
      const sequence = match(/:([A-Za-z0-9+/=]*):/y) ?? fail('a byte sequence is not closed or holds characters base64 does not');
      return sequence.slice(1, -1);
    }
    if (first === '"') skip(/"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"/y, 'a string is malformed');
    else if (first === '%') skip(/%"(?:[\x20\x21\x23\x24\x26-\x7e]|%[0-9a-f]{2})*"/y, 'a display string is malformed');
    else if (first === '?') skip(/\?[01]/y, 'a boolean is malformed');
    else if (first === '@') skip(/@-?\d{1,15}(?![.\d])/y, 'a date is malformed');
    else if (first === '-' || (first !== undefined && first >= '0' && first <= '9')) skip(/-?(?:\d{1,12}\.\d{1,3}|\d{1,15})(?![.\d])/y, 'a number is malformed');
    else skip(/[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*/y, 'an item was expected');
    return undefined;
  }

  function parameters(): void {
    for (let count = 0; input[at] === ';' && count < 1024; count += 1) {
      at += 1;
      match(/ */y);
      key();
      if (input[at] === '=') {
        at += 1;
        bareItem();
      }
    }
  }

  function innerList(): void {
    at += 1;
    for (let count = 0; count < 1024; count += 1) {
      match(/ */y);
      if (input[at] === ')') {
        at += 1;
        parameters();
        return;
      }
      bareItem();
      parameters();
      if (input[at] !== ' ' && input[at] !== ')') fail('an inner list is malformed');
    }
    fail('an inner list is too long');
  }

  if (input === '') fail('the header is empty');
  for (let count = 0; at < input.length && count < 1024; count += 1) {
    const name = key();
    let bytes: string | undefined;
    if (input[at] === '=') {
      at += 1;
      if (input[at] === '(') innerList();
      else bytes = bareItem();
    }
    parameters();
    // "If there are duplicate keys, the value of the last one wins" (parameters travel with it).
    members.delete(name);
    members.set(name, bytes === undefined ? { other: true } : { bytes });
    match(/[ \t]*/y);
    if (at >= input.length) return members;
    if (input[at] !== ',') fail('a comma was expected');
    at += 1;
    match(/[ \t]*/y);
    if (at >= input.length) fail('a trailing comma');
  }
  if (at < input.length) fail('too many members');
  return members;
}

/**
 * `Repr-Digest` (RFC 9530): a dictionary of algorithm → `:base64:`. Only sha-256 is used;
 * others are ignored ("a recipient MAY ignore any or all digests"), so a header that names
 * none declares nothing.
 */
export function parseReprDigest(header: string | null): string | HttpError | undefined {
  if (header === null) return undefined;
  let members: Map<string, Member>;
  try {
    members = parseDictionary(header);
  } catch (error) {
    return invalid(`Repr-Digest is not a structured-field dictionary such as "sha-256=:<base64>:" (${(error as Error).message})`);
  }
  const member = members.get(SHA_256);
  if (member === undefined) return undefined;
  if (!('bytes' in member)) return invalid('the sha-256 value of Repr-Digest must be a byte sequence, ":<base64>:"');
  return canonicalBase64(member.bytes, SHA256_BYTES) ?? invalid(`the sha-256 value of Repr-Digest must be the base64 of ${SHA256_BYTES} bytes`);
}

/**
 * The metadata value `sha256`: 64 hexadecimal digits, or the 44-character base64 of the 32
 * bytes. `value` is the decoded metadata value (null for a key without one); `binary` when
 * it was not text.
 */
export function parseSha256Metadata(value: string | null | undefined, binary = false): string | HttpError | undefined {
  if (value === undefined) return undefined;
  const malformed = invalid(`the metadata value ${SHA256_METADATA_KEY} must be a sha-256 as 64 hexadecimal digits or ${Math.ceil(SHA256_BYTES / 3) * 4} characters of base64`);
  if (value === null || binary) return malformed;
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex').toString('base64');
  return value.length === Math.ceil(SHA256_BYTES / 3) * 4 ? (canonicalBase64(value, SHA256_BYTES) ?? malformed) : malformed;
}

/**
 * What the client declared at creation, from both places: the header and the metadata must
 * agree when both are given.
 */
export function declaredSha256(
  reprDigest: string | null,
  { metadata, binaryKeys }: Readonly<{ metadata: Readonly<Record<string, string | null>>; binaryKeys: readonly string[] }>,
): string | HttpError | undefined {
  const fromHeader = parseReprDigest(reprDigest);
  if (fromHeader instanceof HttpError) return fromHeader;
  const fromMetadata = Object.hasOwn(metadata, SHA256_METADATA_KEY) ? parseSha256Metadata(metadata[SHA256_METADATA_KEY], binaryKeys.includes(SHA256_METADATA_KEY)) : undefined;
  if (fromMetadata instanceof HttpError) return fromMetadata;
  if (fromHeader !== undefined && fromMetadata !== undefined && fromHeader !== fromMetadata) {
    return invalid(`Repr-Digest declares sha-256 :${fromHeader}: but the metadata ${SHA256_METADATA_KEY} declares :${fromMetadata}:`);
  }
  return fromHeader ?? fromMetadata;
}
