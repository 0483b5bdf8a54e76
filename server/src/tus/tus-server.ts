import { Server, type ServerOptions } from '@tus/server';
import { HEADERS } from '@tus/utils';
import type { Config } from '../config.js';
import { internalError } from '../errors.js';
import { EXPOSED_HEADER_NAMES } from '../http/cors.js';
import type { Logger } from '../logger.js';
import type { UploadStorage } from '../storage/index.js';
import { createMemoryLocker } from '../uploads/memory-locker.js';
import type { UploadLocker } from '../uploads/upload-locker.js';
import { translateTusError } from './error-mapping.js';

/** Headers of the errors onResponseError mapped (Retry-After of a 429), which it cannot set: the routes add them. */
const errorHeaders = new WeakMap<Request, Readonly<Record<string, string>>>();

/** The headers the error @tus/server answered `req` with should carry, if any. */
export function mappedErrorHeaders(req: Request): Readonly<Record<string, string>> | undefined {
  return errorHeaders.get(req);
}

/** The callbacks our upload lifecycle plugs into @tus/server. */
export type TusCallbacks = Pick<ServerOptions, 'onUploadCreate' | 'onUploadFinish' | 'onIncomingRequest'>;

export type TusServerDeps = Readonly<{ config: Config; storage: UploadStorage; logger: Logger; locker?: UploadLocker; callbacks?: TusCallbacks }>;

/** The @tus/server instance behind our routes. Returned with its locker, which the expiry sweep shares. */
export function createTusServer({ config, storage, logger, locker = createMemoryLocker(), callbacks = {} }: TusServerDeps): { tus: Server; locker: UploadLocker } {
  const tus = new Server({
    ...callbacks,
    postReceiveInterval: config.hooks.postReceiveIntervalMs,
    path: config.tus.path,
    datastore: storage.datastore,
    locker,
    maxSize: config.tus.maxUploadSize,
    respectForwardedHeaders: config.server.trustProxy,
    allowedOrigins: config.cors.origins === '*' ? undefined : [...config.cors.origins],
    // @tus/server's own list lacks Upload-Expires, which a browser client needs to read (expiration):
    // it exposes what our own answers expose, each name once.
    exposedHeaders: EXPOSED_HEADER_NAMES.filter((name) => !(HEADERS as readonly string[]).includes(name)),
    // A browser may send Upload-Checksum (checksum extension), Repr-Digest (a digest of the
    // whole upload, at creation) and the IETF protocol's headers (tus-js-client's ietf-draft-*
    // modes): the preflight must allow them.
    allowedHeaders: ['Upload-Checksum', 'Repr-Digest', 'Upload-Draft-Interop-Version', 'Upload-Complete', 'Upload-Incomplete'],
    // Every error leaves as `ERR_CODE: message`; unknown ones are logged and never leak.
    // Without a Host header (HTTP/1.0) an absolute URL would read http://null/...: answer a
    // relative Location instead, which RFC 9110 allows.
    generateUrl(req, { proto, host, path, id }) {
      return host ? `${proto}://${host}${path}/${id}` : `${path}/${id}`;
    },
    async onResponseError(req, error) {
      const known = translateTusError(error, req.headers, config.tus.maxUploadSize);
      const uploadId = new URL(req.url).pathname.slice(config.tus.path.length + 1) || undefined;
      if (known?.status === 503) logger.error({ err: error, method: req.method, uploadId }, 'storage or shared state unavailable');
      if (known && Object.keys(known.headers).length > 0) errorHeaders.set(req, known.headers);
      if (known) return { status_code: known.status, body: known.body };
      logger.error({ err: error, method: req.method, uploadId }, 'tus request failed');
      const generic = internalError();
      return { status_code: generic.status, body: generic.body };
    },
  });
  return { tus, locker };
}
