/**
 * The checksum algorithms of the tus checksum extension that this server verifies, with the
 * length of their digests in bytes.
 *
 * "The Server MUST support at least the SHA1 checksum algorithm identified by `sha1`. The
 * names of the checksum algorithms MUST only consist of ASCII characters with the
 * modification that uppercase characters are excluded."
 *
 * crc32 and crc32c are left out: Node 20's zlib has no crc32, and a userland CRC would cost
 * more CPU per byte than sha1 while protecting less.
 */
export const CHECKSUM_DIGEST_BYTES = { md5: 16, sha1: 20, sha256: 32, sha512: 64 } as const;

export type ChecksumAlgorithm = keyof typeof CHECKSUM_DIGEST_BYTES;

export const CHECKSUM_ALGORITHMS = Object.keys(CHECKSUM_DIGEST_BYTES) as readonly ChecksumAlgorithm[];

/**
 * "The `Tus-Checksum-Algorithm` response header MUST be a comma-separated list of the
 * checksum algorithms supported by the server." It goes on every OPTIONS answer.
 */
export const TUS_CHECKSUM_ALGORITHM = CHECKSUM_ALGORITHMS.join(',');

export function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
  return Object.hasOwn(CHECKSUM_DIGEST_BYTES, name);
}
