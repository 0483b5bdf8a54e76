import type { Config } from '../config.js';
import type { Authenticator } from '../http/auth.js';
import type { ServerLifecycle } from '../http/lifecycle.js';
import type { UploadStorage } from '../storage/index.js';
import type { UploadCore } from '../uploads/upload-core.js';
import type { UploadLocker } from '../uploads/upload-locker.js';

/** What the IETF front-end is built on: the same core, storage, lock and lifecycle as tus 1.0. */
export type IetfDeps = Readonly<{
  config: Config;
  core: UploadCore;
  storage: UploadStorage;
  locker: UploadLocker;
  lifecycle: ServerLifecycle;
  /** Set when requests need credentials. */
  authenticate?: Authenticator;
}>;
