/**
 * How an upload's metadata is kept in a store's record (@tus/utils' `Record<string, string | null>`),
 * and the core's own facts that travel with it.
 *
 * The core's facts (binary keys, the concatenation kind, a declared digest, later the owner)
 * are stored under keys that contain a space. tus 1.0: "The key MUST NOT contain spaces and
 * commas and MUST NOT be empty", so no client can send, overwrite or read one of them; they
 * are split off before anything leaves the server (HEAD, hooks, the status resource).
 */

/** A stored key no client key can equal. */
const INTERNAL_PREFIX = ' ';

const KEYS = {
  /** Comma-separated keys whose values are stored as base64: their bytes are not UTF-8 text. */
  binary: ' binary',
  /** `partial`, or `final;<id> <id> …` (the partial uploads it was built from, in order). */
  concat: ' concat',
  /** The sha256 the client declared for the whole upload, base64 (RFC 9530 `Repr-Digest`, or metadata `sha256`). */
  sha256: ' sha256',
  /** Who created the upload (an Actor's subject), recorded by the server, never sent by a client. */
  owner: ' owner',
  /** The protocol that created the upload (`ietf`); absent for tus 1.0, which every older upload was created with. */
  protocol: ' protocol',
} as const;

/** The protocols an upload can be created and continued with (see uploads/upload-protocol.ts). */
export type UploadProtocol = 'tus' | 'ietf';

/** What an upload is in the concatenation extension. */
export type UploadKind = Readonly<{ kind: 'single' }> | Readonly<{ kind: 'partial' }> | Readonly<{ kind: 'final'; parts: readonly string[] }>;

export const SINGLE: UploadKind = Object.freeze({ kind: 'single' });

/** The client's metadata and the core's facts, split apart. */
export type SplitMetadata = Readonly<{
  /** Values as text; a binary value (see binaryKeys) as the base64 of its bytes; null for a key without value. */
  metadata: Readonly<Record<string, string | null>>;
  /** Keys whose value is not UTF-8 text: `metadata[key]` holds its bytes as base64. */
  binaryKeys: readonly string[];
  concat: UploadKind;
  /** The declared sha256 of the whole upload, base64; undefined when none was declared. */
  declaredSha256: string | undefined;
  /** The subject that created the upload; undefined when it was created without authentication. */
  owner: string | undefined;
  /** The protocol that created the upload; `tus` when the record names none. */
  protocol?: UploadProtocol;
}>;

/** Splits a store's metadata record into the client's metadata and the core's facts. */
export function splitStoredMetadata(stored: Readonly<Record<string, string | null>> | undefined): SplitMetadata {
  const metadata: Record<string, string | null> = {};
  let binaryKeys: readonly string[] = [];
  let concat = SINGLE;
  let declaredSha256: string | undefined;
  let owner: string | undefined;
  let protocol: UploadProtocol = 'tus';
  for (const [key, value] of Object.entries(stored ?? {})) {
    if (!key.startsWith(INTERNAL_PREFIX)) {
      metadata[key] = value;
      continue;
    }
    if (key === KEYS.binary && value) binaryKeys = value.split(',');
    else if (key === KEYS.concat && value) concat = parseConcat(value);
    else if (key === KEYS.sha256 && value) declaredSha256 = value;
    else if (key === KEYS.owner && value) owner = value;
    else if (key === KEYS.protocol && value === 'ietf') protocol = value;
  }
  return { metadata, binaryKeys: binaryKeys.filter((key) => key in metadata), concat, declaredSha256, owner, protocol };
}

/** The record a store keeps: the client's metadata with the core's facts beside it. */
export function joinStoredMetadata(split: Partial<SplitMetadata> & Pick<SplitMetadata, 'metadata'>): Record<string, string | null> {
  const stored: Record<string, string | null> = { ...split.metadata };
  const binary = (split.binaryKeys ?? []).filter((key) => key in split.metadata);
  if (binary.length > 0) stored[KEYS.binary] = binary.join(',');
  if (split.concat && split.concat.kind !== 'single') stored[KEYS.concat] = formatConcat(split.concat);
  if (split.declaredSha256) stored[KEYS.sha256] = split.declaredSha256;
  if (split.owner) stored[KEYS.owner] = split.owner;
  if (split.protocol && split.protocol !== 'tus') stored[KEYS.protocol] = split.protocol;
  return stored;
}

function parseConcat(value: string): UploadKind {
  if (value === 'partial') return { kind: 'partial' };
  if (value.startsWith('final;')) return { kind: 'final', parts: value.slice('final;'.length).split(' ').filter(Boolean) };
  return SINGLE;
}

function formatConcat(kind: UploadKind): string {
  return kind.kind === 'final' ? `final;${kind.parts.join(' ')}` : kind.kind;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** "The key MUST NOT contain spaces and commas and MUST NOT be empty." (ASCII only, as tusd and @tus/utils.) */
const KEY = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * Parses an Upload-Metadata header: "one or more comma-separated key-value pairs. The key and
 * value MUST be separated by a space. … The value MUST be Base64 encoded." A value's bytes
 * are kept exactly: text as a string, anything that is not UTF-8 as base64 with its key in
 * `binaryKeys`. An empty or blank header is no metadata. Returns undefined when malformed.
 */
export function parseMetadataHeader(header: string | null): Pick<SplitMetadata, 'metadata' | 'binaryKeys'> | undefined {
  const metadata: Record<string, string | null> = {};
  const binaryKeys: string[] = [];
  if (header === null || header.trim() === '') return { metadata, binaryKeys };
  for (const pair of header.split(',')) {
    const tokens = pair.trim().split(/[ \t]+/);
    const [key = '', value] = tokens;
    if (tokens.length > 2 || !KEY.test(key) || Object.hasOwn(metadata, key)) return undefined;
    if (value === undefined) {
      metadata[key] = null;
      continue;
    }
    if (value.length % 4 !== 0 || !BASE64.test(value)) return undefined;
    const bytes = Buffer.from(value, 'base64');
    try {
      metadata[key] = strictUtf8.decode(bytes);
    } catch {
      metadata[key] = bytes.toString('base64');
      binaryKeys.push(key);
    }
  }
  return { metadata, binaryKeys };
}

/** The Upload-Metadata header for HEAD: each value's original bytes, base64 again. */
export function formatMetadataHeader({ metadata, binaryKeys }: Pick<SplitMetadata, 'metadata' | 'binaryKeys'>): string {
  return Object.entries(metadata)
    .map(([key, value]) => {
      if (value === null) return key;
      return `${key} ${binaryKeys.includes(key) ? value : Buffer.from(value, 'utf8').toString('base64')}`;
    })
    .join(',');
}
