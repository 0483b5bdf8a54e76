import type { ClientRequest } from 'node:http';
import { DefaultHttpStack, type HttpStack } from 'tus-js-client';

/** No byte moved either way for this long: the link is gone even if no error says so. */
export const STALL_TIMEOUT_MS = 30_000;

export class StallError extends Error {
  constructor(readonly ms: number) {
    super(`no byte moved for ${Math.round(ms / 1000)} s`);
    this.name = 'StallError';
  }
}

/**
 * tus-js-client's Node HTTP stack, plus what it lacks: a request whose socket stays silent
 * for `stallTimeoutMs` (a dropped Wi-Fi link, a sleeping laptop, a proxy that swallows the
 * connection) is destroyed, so the retry logic takes over instead of waiting forever.
 */
export function createHttpStack(stallTimeoutMs = STALL_TIMEOUT_MS): HttpStack {
  const inner = new DefaultHttpStack({});
  return {
    getName: () => 'TusUploadCliHttpStack',
    createRequest(method, url) {
      const request = inner.createRequest(method, url);
      const send = request.send.bind(request);
      request.send = (body: unknown) => {
        const sending = send(body);
        // send() creates the node:http request synchronously.
        const raw = request.getUnderlyingObject() as ClientRequest | null;
        raw?.setTimeout(stallTimeoutMs, () => raw.destroy(new StallError(stallTimeoutMs)));
        return sending;
      };
      return request;
    },
  };
}
