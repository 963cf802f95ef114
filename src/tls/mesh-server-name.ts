// Which TLS server names (SNI) a sidecar answers for with its own certificate: the names a mesh
// client, or a client holding an SVID, sends when it means the sidecar and not the app behind it.
import { X509Certificate } from 'node:crypto';
import type { MeshTls } from './mesh-tls.ts';
import { isIdentityServerName, serverNameForSpiffeId } from './server-name.ts';

interface OwnNames {
  /** The identity as a host name, as peer proxies send it; undefined when it has none. */
  readonly identityName: string | undefined;
  readonly leaf: X509Certificate;
}

const ownNamesOf = new WeakMap<MeshTls, OwnNames>();

/**
 * True when a ClientHello naming `serverName` is meant for the sidecar: the identity's host-name
 * form (what peer proxies send: serverNameForSpiffeId), any identity's host-name form, or a DNS SAN of the SVID (`mutual cert
 * --dns`, for clients that check host names, such as gRPC). An identity with no host-name form
 * (not `ns/…/sa/…`) is dialled by peers with the destination's own host name as SNI, so every
 * name is taken as meant for the sidecar. Worked out once per TLS generation.
 */
export function isMeshServerName(meshTls: MeshTls, serverName: string): boolean {
  let own = ownNamesOf.get(meshTls);
  if (!own) {
    own = {
      identityName: serverNameForSpiffeId(meshTls.credentials.spiffeId),
      leaf: new X509Certificate(meshTls.credentials.certificateChainPem),
    };
    ownNamesOf.set(meshTls, own);
  }
  if (own.identityName === undefined || own.identityName === serverName) return true;
  // Another workload's identity name: a peer proxy that expects someone else (a stale address, a
  // certificate swapped for another workload's). Terminated, so that client's log says
  // wrong_identity; passed to the app, it would read as a protocol error. No app's own TLS names
  // a server this way.
  if (isIdentityServerName(serverName)) return true;
  // DNS SANs only: an SVID's subject names nothing a client could dial.
  return own.leaf.checkHost(serverName, { subject: 'never' }) !== undefined;
}
