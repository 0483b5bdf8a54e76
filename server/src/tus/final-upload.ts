import { HttpError } from '../errors.js';
import type { Actor } from '../uploads/actor.js';
import { declaredSha256 } from '../uploads/declared-digest.js';
import type { UploadCore } from '../uploads/upload-core.js';
import { parseMetadataHeader } from '../uploads/stored-metadata.js';
import { parseConcatHeader } from './concat-header.js';
import { TUS_VERSION } from './protocol-guard.js';
import { hookRequest, statusLink } from './upload-lifecycle.js';

export type FinalUploadContext = Readonly<{
  core: UploadCore;
  tusPath: string;
  /** TRUST_PROXY: Forwarded / X-Forwarded-Host name this server too. */
  trustProxy: boolean;
}>;

const FORWARDED_HOST = /host="?([^";,\s]+)/i;
const FORWARDED_PROTO = /proto=(https?)/i;

/** Where clients reach this server, as @tus/server writes its Location headers (so the URLs it handed out are recognised). */
function publicOrigin(request: Request, trustProxy: boolean): { host: string; proto: string } {
  const url = new URL(request.url);
  let host = url.host;
  let proto = url.protocol.slice(0, -1);
  if (trustProxy) {
    const forwarded = request.headers.get('forwarded') ?? '';
    const forwardedProto = FORWARDED_PROTO.exec(forwarded)?.[1] ?? request.headers.get('x-forwarded-proto');
    host = FORWARDED_HOST.exec(forwarded)?.[1] ?? request.headers.get('x-forwarded-host')?.split(',')[0]?.trim() ?? host;
    if (forwardedProto === 'http' || forwardedProto === 'https') proto = forwardedProto;
  }
  return { host, proto };
}

/**
 * POST with `Upload-Concat: final;<url> <url> …` (tus concatenation extension): the final
 * upload is built from the partial uploads by the core, then answered like any creation.
 * Building is part of the request: when the client hears 201, the upload is finished and
 * its processing queued.
 */
export async function createFinalUpload(request: Request, concat: string, actor: Actor | undefined, { core, tusPath, trustProxy }: FinalUploadContext): Promise<Response> {
  const origin = publicOrigin(request, trustProxy);
  const hosts = [...new Set([new URL(request.url).host, origin.host])];
  const parsed = parseConcatHeader(concat, { tusPath, hosts });
  if (parsed instanceof HttpError) throw parsed;
  if (parsed.kind !== 'final') throw new HttpError('ERR_INVALID_CONCAT', 'expected Upload-Concat: final;<upload URL> ...');
  const sent = parseMetadataHeader(request.headers.get('upload-metadata')) ?? { metadata: {}, binaryKeys: [] };

  const declared = declaredSha256(request.headers.get('repr-digest'), sent);
  if (declared instanceof HttpError) throw declared;

  const { upload, finish } = await core.concatenate({ parts: parsed.parts, sent: { ...sent, declaredSha256: declared }, request: hookRequest(request), actor });
  await core.flushed(upload.id);
  if (finish.failure) throw finish.failure;
  if (finish.rejected) throw finish.rejected;
  return new Response(null, {
    status: 201,
    headers: {
      'Tus-Resumable': TUS_VERSION,
      Location: `${origin.proto}://${origin.host}${tusPath}/${upload.id}`,
      Link: statusLink(upload.id),
    },
  });
}
