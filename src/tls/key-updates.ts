// A TLS 1.3 peer may renew its traffic keys at any time (KeyUpdate) and ask for ours to be renewed
// too (update_requested). OpenSSL answers each request with a KeyUpdate record of its own, written
// outside every stream's backpressure, and Node keeps what the socket cannot take yet in memory.
// A peer that sent requests without end and never read made a sidecar buffer every answer: one
// connection with a valid SVID (python3 + libssl, 50,000 requests a second) grew the inbound's RSS
// by 57 MB in 25 s, for as long as the idle timeout (1 h) let it, since KeyUpdates are no data.
// OpenSSL sets no limit; BoringSSL (Envoy) closes a connection after 32 KeyUpdates in a row
// without application data. Here a peer gets 32, and one more per MiB of data it has sent (stacks
// that renew keys on their own, GnuTLS or rustls, do so after far more), then is closed. Used by
// the sidecar's inbound and outbound and by the identity service's API, where a client needs no
// certificate at all to get that far.
import type { TLSSocket } from 'node:tls';

/** KeyUpdates a peer may send beyond those its data earns: BoringSSL's kMaxKeyUpdates. */
export const PEER_KEY_UPDATES_ALLOWED = 32;
/** Bytes of application data from the peer that earn it one more KeyUpdate. */
export const BYTES_PER_EXTRA_KEY_UPDATE = 1 << 20;

/**
 * Counts the peer's KeyUpdates on a connected TLS 1.3 socket (`side` is ours) and destroys the
 * socket, after calling `onLimit` once, when they exceed what its data allows. Node reports each
 * new traffic secret as a `keylog` line; the listener turns that report on for this socket only,
 * after its handshake.
 */
export function limitPeerKeyUpdates(socket: TLSSocket, side: 'server' | 'client', onLimit: () => void): void {
  // Lines name the new secret first: CLIENT_TRAFFIC_SECRET_N is a client's update, SERVER_… ours
  // (or, on a client socket, the server's).
  const peerSecret = Buffer.from(side === 'server' ? 'CLIENT_TRAFFIC_SECRET_N ' : 'SERVER_TRAFFIC_SECRET_N ');
  let updates = 0;
  const onKeylog = (line: Buffer) => {
    if (line.compare(peerSecret, 0, peerSecret.length, 0, peerSecret.length) !== 0) return;
    updates += 1;
    if (updates <= PEER_KEY_UPDATES_ALLOWED + socket.bytesRead / BYTES_PER_EXTRA_KEY_UPDATE) return;
    socket.off('keylog', onKeylog);
    onLimit();
    socket.destroy();
  };
  socket.on('keylog', onKeylog);
}
