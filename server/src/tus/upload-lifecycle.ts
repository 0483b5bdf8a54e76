import { EVENTS, type Server, type ServerOptions } from '@tus/server';
import type { Upload } from '@tus/utils';
import type { Config } from '../config.js';
import { HttpError } from '../errors.js';
import { applyCreationRules } from '../hooks/creation-rules.js';
import type { HookDispatcher } from '../hooks/hook-dispatcher.js';
import type { HookRequest, HookUpload } from '../hooks/types.js';
import type { Logger } from '../logger.js';
import { hookUpload, type Processing } from '../processing/processing-service.js';
import type { StatusStore } from '../processing/status-store.js';
import { statusPath } from '../routes/status.js';
import type { UploadStorage } from '../storage/index.js';

/** Set by our routes on the request handed to @tus/server: the client's socket address. */
export const REMOTE_ADDRESS_HEADER = 'x-upload-server-remote-address';

export type UploadLifecycleDeps = Readonly<{
  config: Config;
  storage: UploadStorage;
  hooks: HookDispatcher;
  processing: Processing;
  statuses: StatusStore;
  logger: Logger;
}>;

/** The request as hooks see it: plain data. */
export function hookRequest(req: Request): HookRequest {
  const headers: Record<string, string> = {};
  req.headers.forEach((value, name) => {
    if (name !== REMOTE_ADDRESS_HEADER) headers[name] = value;
  });
  const url = new URL(req.url);
  return { method: req.method, uri: `${url.pathname}${url.search}`, remoteAddress: req.headers.get(REMOTE_ADDRESS_HEADER), headers };
}

const statusLink = (id: string) => `<${statusPath(id)}>; rel="status"`;

/**
 * Connects @tus/server's callbacks and events to validation, hooks and processing.
 * The finish path runs pre-finish, then durably queues processing and post-finish before
 * the client hears back: whatever the client or a hook does next, processing happens.
 */
export function uploadLifecycle({ config, storage, hooks, processing, statuses, logger }: UploadLifecycleDeps) {
  const terminating = new Map<string, HookUpload>();

  const onUploadCreate: NonNullable<ServerOptions['onUploadCreate']> = async (req, upload) => {
    const request = hookRequest(req);
    const info = hookUpload(upload);
    const metadata = applyCreationRules(config.validation, info.metadata);
    const result = await hooks.runBlocking('pre-create', { type: 'pre-create', upload: { ...info, metadata }, request });
    return { metadata: { ...(result.metadata ?? metadata) } };
  };

  const onUploadFinish: NonNullable<ServerOptions['onUploadFinish']> = async (req, upload) => {
    const request = hookRequest(req);
    const info = hookUpload(upload);
    let failure: unknown;
    let rejected: HttpError | undefined;
    try {
      await hooks.runBlocking('pre-finish', { type: 'pre-finish', upload: info, request });
    } catch (error) {
      if (error instanceof HttpError && error.status < 500) rejected = error;
      else failure = error;
    }
    if (rejected) {
      const reason = rejected.message;
      await statuses.update(upload.id, (current) => ({
        id: upload.id,
        processors: current?.processors ?? {},
        state: 'rejected',
        error: `rejected by the pre-finish hook: ${reason}`,
        updatedAt: new Date().toISOString(),
      }));
    }
    // Durable before we answer: a 5xx below, a crash, or a client that never asks again
    // cannot lose the processing (the queue runs it once, whoever enqueues it).
    await processing.ensure(upload.id);
    await hooks.notify('post-finish', { type: 'post-finish', upload: info, request }, `post-finish:${upload.id}`);
    if (failure) throw failure;
    if (rejected) throw rejected;
    return { headers: { Link: statusLink(upload.id) } };
  };

  const onIncomingRequest: NonNullable<ServerOptions['onIncomingRequest']> = async (req, id) => {
    if (req.method === 'PATCH') {
      const status = await statuses.get(id);
      if (status?.stopped) throw new HttpError('ERR_UPLOAD_STOPPED', 'this upload was stopped by the server and takes no more bytes');
      return;
    }
    if (req.method !== 'DELETE') return;
    let upload: Upload;
    try {
      upload = await storage.getUpload(id);
    } catch {
      return; // @tus/server answers 404/410 itself
    }
    const info = hookUpload(upload);
    await hooks.runBlocking('pre-terminate', { type: 'pre-terminate', upload: info, request: hookRequest(req) });
    terminating.set(id, info);
  };

  /** Events: post-create, post-receive, post-terminate. Each is queued durably by the dispatcher. */
  function listen(tus: Server): void {
    tus.on(EVENTS.POST_CREATE, (req: Request, upload: Upload) => {
      const info = hookUpload(upload);
      hooks.notify('post-create', { type: 'post-create', upload: info, request: hookRequest(req) }, `post-create:${upload.id}`).catch((error: unknown) =>
        logger.error({ err: error, uploadId: upload.id }, 'could not queue post-create'),
      );
    });
    if (hooks.hasTargets('post-receive')) {
      tus.on(EVENTS.POST_RECEIVE, (_source: unknown, upload: Upload) => {
        const info = hookUpload(upload);
        hooks.notify('post-receive', { type: 'post-receive', upload: info, request: null }, `post-receive:${upload.id}:${upload.offset}`).catch((error: unknown) =>
          logger.error({ err: error, uploadId: upload.id }, 'could not queue post-receive'),
        );
      });
    }
    tus.on(EVENTS.POST_TERMINATE, (req: Request, _res: Response, id: string) => {
      const info = terminating.get(id) ?? { id, size: null, offset: 0, metadata: {}, createdAt: null };
      terminating.delete(id);
      statuses.delete(id).catch((error: unknown) => logger.warn({ err: error, uploadId: id }, 'could not delete a status record'));
      hooks.notify('post-terminate', { type: 'post-terminate', upload: info, request: hookRequest(req) }, `post-terminate:${id}`).catch((error: unknown) =>
        logger.error({ err: error, uploadId: id }, 'could not queue post-terminate'),
      );
    });
  }

  return { options: { onUploadCreate, onUploadFinish, onIncomingRequest }, listen, statusLink };
}
