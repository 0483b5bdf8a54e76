import { DetailedError } from 'tus-js-client';

/**
 * Why an upload failed, in words:
 * - `refused`: the server answered 4xx (a rule, a limit, a token): trying again will not help;
 * - `server`: the server answered 5xx, still after every retry;
 * - `network`: no answer at all (refused connection, reset, stalled), after every retry;
 * - `other`: anything else (a protocol violation, a local read error).
 */
export type Failure = Readonly<{ kind: 'refused' | 'server' | 'network' | 'other'; status: number | undefined; message: string }>;

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  410: 'Gone',
  412: 'Precondition Failed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  423: 'Locked',
  429: 'Too Many Requests',
  460: 'Checksum Mismatch',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const MAX_MESSAGE = 300;

/**
 * The words in a response body: the message of a tusd-style `ERR_CODE: message` line, else
 * the first line of a short plain-text body; never an HTML page.
 */
export function messageFromBody(body: string): string | undefined {
  const text = body.trim();
  if (text === '' || text.startsWith('<')) return undefined;
  const first = (text.split(/\r?\n/, 1)[0] ?? '').trim();
  const coded = /^[A-Z][A-Z0-9_]*:\s*(.+)$/.exec(first);
  const message = (coded?.[1] ?? first).trim();
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message;
}

/** Node's error codes, for people. */
function describeNetworkError(error: Error | null | undefined): string {
  const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'the server refused the connection (ECONNREFUSED)';
    case 'ECONNRESET':
    case 'EPIPE':
      return `the connection was cut (${code})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the server's name does not resolve (${code})`;
    case 'ETIMEDOUT':
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return `the server cannot be reached (${code})`;
    default:
      break;
  }
  if (error?.message) return error.message;
  return 'the connection failed';
}

/** Turns what tus-js-client reports to onError into a Failure. */
export function describeFailure(error: unknown): Failure {
  if (error instanceof DetailedError) {
    const response = error.originalResponse;
    if (response) {
      const status = response.getStatus();
      const message = messageFromBody(response.getBody() ?? '') ?? STATUS_TEXT[status] ?? `HTTP ${status}`;
      return { kind: status >= 400 && status < 500 ? 'refused' : status >= 500 ? 'server' : 'other', status, message };
    }
    if (error.causingError) return { kind: 'network', status: undefined, message: describeNetworkError(error.causingError) };
    return { kind: 'other', status: undefined, message: error.message.replace(/^tus: /, '') };
  }
  if (error instanceof Error) return { kind: 'other', status: undefined, message: error.message.replace(/^tus: /, '') };
  return { kind: 'other', status: undefined, message: String(error) };
}

/** The one line the uploader prints for a failed upload. */
export function failureLine(name: string, failure: Failure): string {
  switch (failure.kind) {
    case 'refused':
      return `upload of ${name} refused by the server: ${failure.message} (${failure.status})`;
    case 'server':
      return `upload of ${name} failed: the server answered ${failure.status}: ${failure.message}`;
    case 'network':
      return `upload of ${name} failed: ${failure.message}`;
    case 'other':
      return `upload of ${name} failed: ${failure.message}`;
  }
}

/** Whether tus-js-client should try again: what its default says (no 4xx but 409 and 423), as one place to hang a notice on. */
export function isRetryable(error: DetailedError): boolean {
  const status = error.originalResponse?.getStatus() ?? 0;
  return status < 400 || status >= 500 || status === 409 || status === 423;
}
