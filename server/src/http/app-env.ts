import type { HttpBindings } from '@hono/node-server';
import type { Actor } from '../uploads/actor.js';

/** Hono's typing for our app: Node bindings when served over a socket, none under app.request(). */
export type AppEnv = {
  Bindings: Partial<HttpBindings>;
  Variables: {
    /** Set by the tus routes for the request log. */
    uploadId?: string;
    /** Request body bytes received, for the request log. */
    bytesIn?: number;
    /** Who makes the request, once authentication verified it; unset when authentication is off. */
    actor?: Actor;
  };
};
