import type { IncomingMessage, ServerResponse } from 'node:http';

/** Header values go on the wire as they are: refuse anything that could split the message. */
const SAFE_VALUE = /^[\x20-\x7e\t]*$/;

/**
 * Writes an informational (1xx) response, `104 Upload Resumption Supported` here, ahead of
 * the final response. Node 20 has public writers for 100, 102 and 103 only, so the bytes go
 * on the response's socket directly, which is what those writers do: allowed only while
 * nothing of the final response has been written (no header sent, the socket attached to
 * this response rather than queued behind a pipelined one) and only on HTTP/1.1 — RFC 9110:
 * "A server MUST NOT send a 1xx response to an HTTP/1.0 client."
 *
 * Returns whether it was sent. Under `app.request()` (no socket) it never is.
 */
export function sendInformational(
  incoming: IncomingMessage | undefined,
  outgoing: ServerResponse | undefined,
  status: number,
  reason: string,
  headers: Readonly<Record<string, string>>,
): boolean {
  if (!incoming || !outgoing) return false;
  if (incoming.httpVersionMajor !== 1 || incoming.httpVersionMinor < 1) return false;
  const socket = outgoing.socket;
  if (!socket || socket.destroyed || !socket.writable || outgoing.headersSent || outgoing.writableEnded) return false;
  const lines = [`HTTP/1.1 ${status} ${reason}`];
  for (const [name, value] of Object.entries(headers)) {
    if (!SAFE_VALUE.test(value)) return false;
    lines.push(`${name}: ${value}`);
  }
  socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return true;
}
