import { canonicalIp } from '../ip/index.ts';
import type { PeerTls } from '../tls/index.ts';

/** What the proxy knows about one accepted connection, carried from stage to stage. */
export interface InboundContext {
  /** The app port the connection is for (original destination or the listener's mapping). */
  readonly appPort: number;
  /**
   * The port policy sees (PeerAuthentication port modes, AuthorizationPolicy ports and
   * destination.port): the app port, or the one --policy-port maps it to. Metrics keep appPort.
   */
  readonly policyPort: number;
  readonly sourceIp: string;
  peer: PeerTls;
}

const CONTEXT = Symbol('mutual.inbound-context');

export function setInboundContext(socket: object, context: InboundContext): void {
  (socket as Record<symbol, unknown>)[CONTEXT] = context;
}

/** The context of a socket, or of the raw socket a TLS socket was wrapped around. */
export function getInboundContext(socket: object): InboundContext | undefined {
  const own = (socket as Record<symbol, unknown>)[CONTEXT] as InboundContext | undefined;
  if (own) return own;
  // node:tls keeps the wrapped raw socket as `_parent` on server-side TLS sockets.
  const parent = (socket as { _parent?: object })._parent;
  return parent ? ((parent as Record<symbol, unknown>)[CONTEXT] as InboundContext | undefined) : undefined;
}

/** The canonical address (policies see 198.18.0.2, not ::ffff:198.18.0.2), or '' when there is none. */
export function plainIp(address: string | undefined): string {
  return canonicalIp(address) ?? '';
}
