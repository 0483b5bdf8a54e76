import { HttpError } from '../errors.js';
import { MAX_PARTS } from '../uploads/concatenation.js';
import { uploadIdFromSegment } from './upload-id.js';

/** What an Upload-Concat header asks for. */
export type ConcatHeader = Readonly<{ kind: 'partial' }> | Readonly<{ kind: 'final'; parts: readonly string[] }>;

const invalid = (message: string) => new HttpError('ERR_INVALID_CONCAT', message);

/** The header's shape alone, for the guard: `partial`, or `final;` and at least one URL. */
export function checkConcatSyntax(value: string): HttpError | undefined {
  const trimmed = value.trim();
  if (trimmed === 'partial') return undefined;
  if (!trimmed.startsWith('final;')) return invalid(`Upload-Concat must be "partial" or "final;<upload URL> <upload URL> ...", got "${value.slice(0, 64)}"`);
  if (trimmed.slice('final;'.length).trim() === '') return invalid('Upload-Concat: final names no partial uploads');
  return undefined;
}

export type UploadUrlContext = Readonly<{
  /** The tus path, without a trailing slash ("/files"). */
  tusPath: string;
  /** Hosts (with port) that name this server in absolute URLs: the request's, and the forwarded one behind a trusted proxy. */
  hosts: readonly string[];
}>;

/**
 * Reads an Upload-Concat header. "The value MUST be final; followed by a space-separated
 * list of the partial upload URLs". We accept absolute URLs of this server and absolute
 * paths (as tusd does); a relative reference, another server's URL, or a URL outside the tus
 * path is refused, as is a list that names an upload twice.
 */
export function parseConcatHeader(value: string, { tusPath, hosts }: UploadUrlContext): ConcatHeader | HttpError {
  const syntax = checkConcatSyntax(value);
  if (syntax) return syntax;
  const trimmed = value.trim();
  if (trimmed === 'partial') return { kind: 'partial' };
  const urls = trimmed.slice('final;'.length).trim().split(/\s+/);
  if (urls.length > MAX_PARTS) return invalid(`a final upload is made of at most ${MAX_PARTS} partial uploads, got ${urls.length}`);
  const parts: string[] = [];
  for (const url of urls) {
    const id = uploadIdOfUrl(url, tusPath, hosts);
    if (id instanceof HttpError) return id;
    if (parts.includes(id)) return invalid(`partial upload ${id} is named twice`);
    parts.push(id);
  }
  return { kind: 'final', parts };
}

function uploadIdOfUrl(url: string, tusPath: string, hosts: readonly string[]): string | HttpError {
  const shown = url.slice(0, 200);
  let path: string;
  if (/^https?:\/\//i.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return invalid(`"${shown}" is not a URL`);
    }
    if (!hosts.includes(parsed.host)) return invalid(`"${shown}" is an upload of another server; partial uploads must be uploads of this server`);
    if (parsed.search || parsed.hash) return invalid(`"${shown}" is not an upload URL of this server`);
    // The raw path as sent, not the URL parser's: "/files/x/../y" must not become "/files/y".
    const slash = url.indexOf('/', url.indexOf('//') + 2);
    path = slash === -1 ? '/' : url.slice(slash);
  } else if (url.startsWith('/') && !url.startsWith('//')) {
    path = url;
  } else {
    return invalid(`"${shown}" is a relative URL; name each partial upload by its absolute URL or its path (${tusPath}/<id>)`);
  }
  const id = path.startsWith(`${tusPath}/`) ? uploadIdFromSegment(path.slice(tusPath.length + 1)) : undefined;
  return id ?? invalid(`"${shown}" is not an upload URL of this server (expected ${tusPath}/<id>)`);
}
