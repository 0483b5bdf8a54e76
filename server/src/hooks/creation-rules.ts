import { HttpError } from '../errors.js';
import { sanitizeFilename } from '../filenames.js';
import { essence, isAllowedType, isMediaTypePattern, type MediaTypePatterns } from '../media-types.js';

export type CreationRules = Readonly<{
  /** Empty allows every type. */
  allowedTypes: MediaTypePatterns;
  requiredMetadata: readonly string[];
}>;

/**
 * The built-in pre-create validation, from configuration: required metadata keys, the
 * declared `filetype` against ALLOWED_TYPES, and a filename made safe to store and show.
 * Returns the metadata to store (the filename sanitized) or throws a 4xx that says what
 * was wrong. (The size limit and the metadata size cap are checked from headers earlier.)
 */
export function applyCreationRules(rules: CreationRules, metadata: Readonly<Record<string, string>>): Record<string, string> {
  const result: Record<string, string> = { ...metadata };
  if (result.filename !== undefined) {
    const safe = sanitizeFilename(result.filename);
    if (safe === undefined) delete result.filename;
    else result.filename = safe;
  }
  const missing = rules.requiredMetadata.filter((key) => !result[key]);
  if (missing.length > 0) {
    throw new HttpError('ERR_MISSING_METADATA', `missing required metadata: ${missing.join(', ')} (send it in Upload-Metadata)`);
  }
  if (rules.allowedTypes.length > 0) {
    const allowed = rules.allowedTypes.join(', ');
    const declared = result.filetype ? essence(result.filetype) : '';
    if (!declared) throw new HttpError('ERR_TYPE_NOT_ALLOWED', `filetype metadata is required; allowed: ${allowed}`);
    // "video" or "video/*" is no media type, though video/* would match its major part.
    const concrete = isMediaTypePattern(declared) && !declared.endsWith('/*');
    if (!concrete || !isAllowedType(declared, rules.allowedTypes)) {
      throw new HttpError('ERR_TYPE_NOT_ALLOWED', `filetype ${declared.slice(0, 100)} is not allowed; allowed: ${allowed}`);
    }
  }
  return result;
}
