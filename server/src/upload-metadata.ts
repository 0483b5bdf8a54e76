/** @tus/utils metadata allows keys without values (null); hooks and JSON want plain strings. */
export function plainMetadata(metadata: Readonly<Record<string, string | null>> | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata ?? {})) result[key] = value ?? '';
  return result;
}
