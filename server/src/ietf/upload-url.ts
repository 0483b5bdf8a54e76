const FORWARDED_HOST = /host="?([^";,\s]+)/i;
const FORWARDED_PROTO = /proto="?(https?)/i;

/**
 * The URL of an upload resource, as clients reach this server: the request's own origin, or
 * with TRUST_PROXY the one a proxy names (Forwarded, X-Forwarded-Host/-Proto), so the URL a
 * 104 and a 201 hand out is the one the tus routes recognise.
 */
export function uploadUrl(request: Request, tusPath: string, id: string, trustProxy: boolean): string {
  const url = new URL(request.url);
  let host = url.host;
  let proto = url.protocol.slice(0, -1);
  if (trustProxy) {
    const forwarded = request.headers.get('forwarded') ?? '';
    host = FORWARDED_HOST.exec(forwarded)?.[1] ?? request.headers.get('x-forwarded-host')?.split(',')[0]?.trim() ?? host;
    const forwardedProto = FORWARDED_PROTO.exec(forwarded)?.[1] ?? request.headers.get('x-forwarded-proto')?.split(',')[0]?.trim();
    if (forwardedProto === 'http' || forwardedProto === 'https') proto = forwardedProto;
  }
  return host ? `${proto}://${host}${tusPath}/${id}` : `${tusPath}/${id}`;
}
