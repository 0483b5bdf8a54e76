/**
 * Hook points, like tusd's. Blocking hooks run while the client waits and can change the
 * outcome; notifying hooks are queued, delivered at least once, and never hold up an upload.
 *
 * | hook           | when                                   | blocks | may                                   |
 * |----------------|----------------------------------------|--------|---------------------------------------|
 * | pre-create     | before an upload is created            | yes    | reject (status, message), set metadata |
 * | post-create    | after it was created                   | no     |                                       |
 * | post-receive   | while bytes arrive (rate-limited)      | no     | stop the upload                       |
 * | pre-finish     | after the last byte, before the answer | yes    | reject (marks the upload rejected)    |
 * | post-finish    | after the last byte                    | no     |                                       |
 * | pre-terminate  | before a DELETE                        | yes    | reject (veto the DELETE)              |
 * | post-terminate | after a DELETE                         | no     |                                       |
 * | post-process   | when processing ends (any state)       | no     |                                       |
 */
export const HOOK_TYPES = ['pre-create', 'post-create', 'post-receive', 'pre-finish', 'post-finish', 'pre-terminate', 'post-terminate', 'post-process'] as const;
export type HookType = (typeof HOOK_TYPES)[number];

export const BLOCKING_HOOKS = ['pre-create', 'pre-finish', 'pre-terminate'] as const satisfies readonly HookType[];
export type BlockingHookType = (typeof BLOCKING_HOOKS)[number];
export type NotifyingHookType = Exclude<HookType, BlockingHookType>;

export function isBlockingHook(type: HookType): type is BlockingHookType {
  return (BLOCKING_HOOKS as readonly HookType[]).includes(type);
}

/** The upload as hooks see it: plain data, never a Request or a Hono context. */
export type HookUpload = Readonly<{
  id: string;
  /** null while the length is deferred. */
  size: number | null;
  offset: number;
  /** Text values as strings; a value that is not UTF-8 text as the base64 of its bytes (its key in binaryMetadataKeys). */
  metadata: Readonly<Record<string, string>>;
  /** Present when some metadata values are not text: their keys (their values are base64). */
  binaryMetadataKeys?: readonly string[];
  createdAt: string | null;
}>;

/**
 * The HTTP request that triggered the hook, when there was one. Never a credential: the
 * Authorization, Cookie, Proxy-Authorization and X-Api-Key headers and an `access_token`
 * query parameter are left out; `subject` says who authentication verified instead.
 */
export type HookRequest = Readonly<{
  method: string;
  /** Path and query, without `access_token`. */
  uri: string;
  remoteAddress: string | null;
  /** The verified subject (a JWT's `sub`, `api-key:<id>`); null when authentication is off. */
  subject: string | null;
  headers: Readonly<Record<string, string>>;
}>;

/** Processing outcome, carried by post-process. */
export type HookProcessing = Readonly<{
  state: 'done' | 'failed' | 'rejected';
  results: Readonly<Record<string, unknown>>;
  error: string | null;
}>;

export type HookEvent = Readonly<{
  type: HookType;
  upload: HookUpload;
  request: HookRequest | null;
  processing?: HookProcessing;
}>;

/** What a blocking hook may answer. Returning nothing lets the request proceed unchanged. */
export type BlockingHookResult = Readonly<{
  /** Refuse the request; the client gets this status (4xx) and message. */
  reject?: Readonly<{ status?: number; message: string }>;
  /** pre-create only: the metadata to store instead of the client's. */
  metadata?: Readonly<Record<string, string>>;
}>;

/** What a post-receive hook may answer. */
export type PostReceiveResult = Readonly<{ stopUpload?: boolean }>;

export type HookResult<T extends HookType> = T extends BlockingHookType ? BlockingHookResult : T extends 'post-receive' ? PostReceiveResult : void;

/**
 * The typed hook API for embedding the server as a library: any subset of handlers.
 * A handler that throws fails its hook (a 5xx for blocking hooks, a retry for notifying ones).
 */
export type HookHandlers = {
  [T in HookType]?: (event: HookEvent & { type: T }) => Promise<HookResult<T> | void> | HookResult<T> | void;
};
