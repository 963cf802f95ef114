// "Why no mTLS" is data, not a log line: the same value feeds policy, metrics labels and the
// dashboard.

export type NoTlsReason =
  | 'no_client_hello'
  | 'loopback'
  | 'port_skipped'
  | 'not_meshed'
  | 'disabled'
  | 'opaque_tls';

export type PeerTls =
  | { readonly kind: 'mtls'; readonly peerId: string; readonly localId: string }
  | { readonly kind: 'none'; readonly reason: NoTlsReason };

/** Why a handshake failed, as metric label values. */
export type HandshakeFailureReason =
  | 'expired'
  | 'not_yet_valid'
  | 'unknown_authority'
  | 'wrong_identity'
  | 'no_client_certificate'
  | 'not_svid'
  | 'protocol'
  | 'timeout'
  | 'client_closed';
