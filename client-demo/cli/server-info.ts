/** What a tus server says about itself in answer to OPTIONS (tus 1.0.0 §"OPTIONS"). */
export type ServerInfo = Readonly<{
  /** `Tus-Extension`, split: `creation`, `termination`, `concatenation`... */
  extensions: readonly string[];
  /** `Tus-Max-Size` in bytes, when the server says. */
  maxSize: number | undefined;
}>;

const OPTIONS_TIMEOUT_MS = 10_000;

/** Parses the headers of an OPTIONS answer. */
export function parseServerInfo(headers: Headers): ServerInfo {
  const extensions = (headers.get('tus-extension') ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const maxSizeText = headers.get('tus-max-size');
  const maxSize = maxSizeText !== null && /^\d+$/.test(maxSizeText.trim()) ? Number(maxSizeText) : undefined;
  return { extensions, maxSize };
}

/** Asks the endpoint with OPTIONS; rejects with a sentence when it cannot be asked. */
export async function fetchServerInfo(endpoint: string, headers: Readonly<Record<string, string>>): Promise<ServerInfo> {
  let response: Response;
  try {
    response = await fetch(endpoint, { method: 'OPTIONS', headers: { ...headers, 'Tus-Resumable': '1.0.0' }, signal: AbortSignal.timeout(OPTIONS_TIMEOUT_MS) });
  } catch (error) {
    const cause = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new Error(`OPTIONS ${endpoint} failed (${cause})`, { cause: error });
  }
  await response.body?.cancel();
  if (!response.ok) throw new Error(`OPTIONS ${endpoint} answered ${response.status}`);
  return parseServerInfo(response.headers);
}
