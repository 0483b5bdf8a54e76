/**
 * What differs between the interop versions of the IETF draft "Resumable Uploads for HTTP"
 * (draft-ietf-httpbis-resumable-upload) that this server speaks. The handlers read this
 * table; they never compare version numbers themselves. The README has the same table.
 *
 * | version | drafts      | clients                                   | completeness header    | append Content-Type        | Upload-Length | Upload-Limit lifetime key | problem types                                        | OPTIONS                          |
 * |---------|-------------|-------------------------------------------|------------------------|----------------------------|---------------|---------------------------|------------------------------------------------------|----------------------------------|
 * | 3       | -01         | iOS 17, macOS 14                          | Upload-Incomplete      | any                        | accepted¹     | none                      | none (text bodies)                                   | version only                     |
 * | 4       | -02         | (none known)                              | Upload-Complete        | any                        | accepted¹     | none                      | none                                                 | version only                     |
 * | 5       | -03         | iOS 18.0, tus-js-client `ietf-draft-03`   | Upload-Complete        | any                        | accepted¹     | none                      | none                                                 | version only                     |
 * | 6       | -04, -05    | iOS 18.1+, tus-js-client `ietf-draft-05`  | Upload-Complete        | application/partial-upload | yes           | `expires`                 | mismatching-upload-offset, completed-upload          | Upload-Limit                     |
 * | 7       | -06 to -08  |                                           | Upload-Complete        | application/partial-upload | yes           | `max-age`                 | + inconsistent-upload-length                         | Upload-Limit                     |
 * | 8       | -09 to -11  | iOS 26                                    | Upload-Complete        | application/partial-upload | yes           | `max-age`                 | + inconsistent-upload-length                         | Upload-Limit, Accept-Patch       |
 *
 * ¹ Upload-Length entered the draft in -05; tus-js-client sends it with version 5 too, and a
 *   length a client declares is never ignored.
 *
 * Common to all: `104 Upload Resumption Supported` with Location (and the version) as soon as
 * the upload exists (since -01), creation answered `201 Created` with Location, HEAD answered
 * `204 No Content` with Upload-Offset, the completeness header and Cache-Control: no-store,
 * appends `204`, a mismatched offset `409` with the correct Upload-Offset, DELETE `204`.
 */

export type InteropVersion = 3 | 4 | 5 | 6 | 7 | 8;

export type VersionRules = Readonly<{
  version: InteropVersion;
  /** The draft revisions that use this interop version. */
  drafts: string;
  /** -01 says `Upload-Incomplete: ?1` for an unfinished upload; -02 on say `Upload-Complete: ?0`. */
  completeness: 'Upload-Incomplete' | 'Upload-Complete';
  /** The media type an append (PATCH) must carry, when the draft requires one (-04 on). */
  appendContentType: 'application/partial-upload' | undefined;
  /** Upload-Limit on creation, HEAD and OPTIONS (-04 on), and the name of its lifetime key (renamed in -06). */
  limits: Readonly<{ lifetimeKey: 'expires' | 'max-age' }> | undefined;
  /** RFC 9457 problem types the draft defines (-04 on; inconsistent-upload-length from -06). */
  problemTypes: readonly ProblemType[];
  /** OPTIONS lists `Accept-Patch: application/partial-upload` (-10 on, so version 8). */
  acceptPatch: boolean;
}>;

export type ProblemType = 'mismatching-upload-offset' | 'completed-upload' | 'inconsistent-upload-length';

/** The problem type URIs the draft registers with IANA. */
export const PROBLEM_TYPE_URI = (type: ProblemType) => `https://iana.org/assignments/http-problem-types#${type}`;

const WITHOUT_LIMITS = { appendContentType: undefined, limits: undefined, problemTypes: [], acceptPatch: false } as const;
const PARTIAL_UPLOAD = 'application/partial-upload';

export const INTEROP_VERSIONS: Readonly<Record<InteropVersion, VersionRules>> = Object.freeze({
  3: { version: 3, drafts: '-01', completeness: 'Upload-Incomplete', ...WITHOUT_LIMITS },
  4: { version: 4, drafts: '-02', completeness: 'Upload-Complete', ...WITHOUT_LIMITS },
  5: { version: 5, drafts: '-03', completeness: 'Upload-Complete', ...WITHOUT_LIMITS },
  6: {
    version: 6,
    drafts: '-04, -05',
    completeness: 'Upload-Complete',
    appendContentType: PARTIAL_UPLOAD,
    limits: { lifetimeKey: 'expires' },
    problemTypes: ['mismatching-upload-offset', 'completed-upload'],
    acceptPatch: false,
  },
  7: {
    version: 7,
    drafts: '-06 to -08',
    completeness: 'Upload-Complete',
    appendContentType: PARTIAL_UPLOAD,
    limits: { lifetimeKey: 'max-age' },
    problemTypes: ['mismatching-upload-offset', 'completed-upload', 'inconsistent-upload-length'],
    acceptPatch: false,
  },
  8: {
    version: 8,
    drafts: '-09 to -11',
    completeness: 'Upload-Complete',
    appendContentType: PARTIAL_UPLOAD,
    limits: { lifetimeKey: 'max-age' },
    problemTypes: ['mismatching-upload-offset', 'completed-upload', 'inconsistent-upload-length'],
    acceptPatch: true,
  },
});

export const SERVED_VERSIONS: readonly InteropVersion[] = [3, 4, 5, 6, 7, 8];

/** The header that marks a request as the IETF protocol's. */
export const INTEROP_HEADER = 'Upload-Draft-Interop-Version';

/**
 * The rules for the version a request names, or undefined when we do not speak it. The
 * draft defines the field as a structured Integer: "8", never "08" or "8.0".
 */
export function versionRules(header: string): VersionRules | undefined {
  const trimmed = header.trim();
  if (!/^[0-9]{1,2}$/.test(trimmed) || (trimmed.length > 1 && trimmed.startsWith('0'))) return undefined;
  return (INTEROP_VERSIONS as Record<number, VersionRules | undefined>)[Number(trimmed)];
}
