/**
 * Who makes a request, as authentication established it (a JWT's `sub`, or an API key's id).
 * The core records it as an upload's owner at creation and compares it on every later request.
 * Undefined when authentication is off: uploads then have no owner.
 */
export type Actor = Readonly<{
  /** `sub` of a JWT, or `api-key:<id>` for an API key. */
  subject: string;
  /** May see and change every upload (the configured admin scope). */
  admin: boolean;
}>;
