import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { Clock } from '../../clock.ts';
import { type MeshTls, requireServerIdentity, serverNameForSpiffeId } from '../../tls/index.ts';
import { type MeshedDestination, reuseKey } from './destinations.ts';
import { watchRetransmissions } from './tcp-liveness.ts';

const MAX_SESSIONS = 1024;

/**
 * The longest a new mTLS connection may take, TCP connect and TLS handshake together (Istio's
 * connect timeout is 10 s, Linkerd's 1 s). Without it a destination whose SYNs or handshake are
 * dropped (a vanished pod, a partition, a firewall) held the app's request for the kernel's SYN
 * retries, 127 s, and a handshake that never got an answer forever.
 */
export const MESH_CONNECT_TIMEOUT_MS = 10_000;
/**
 * TCP keepalive on every mesh connection, as Linkerd sets it (10 s): idle 10 s, then probes 1 s
 * apart (libuv's interval), 10 unanswered and the kernel resets it. A peer that vanished without a
 * RST (pod gone, partition) is noticed in about 20 s instead of never, so a pooled connection to it
 * is dropped from the pool, and a request waiting on it for an answer fails instead of hanging.
 */
export const MESH_KEEPALIVE_MS = 10_000;

/** What a timed-out mesh connection fails with (its `code` names the metric reason). */
export class MeshConnectTimeoutError extends Error {
  readonly code = 'MESH_CONNECT_TIMEOUT';
}

/**
 * Opens mTLS connections to other proxies, resuming TLS sessions where it can. Node skips the
 * server identity check on a resumed session, so a session is only ever offered to the same
 * address, for the same expected SPIFFE ID, under the same TLS generation it was made with.
 */
export function createMtlsConnector(clock: Clock) {
  const sessions = new Map<string, Buffer>();
  return {
    connect(
      destination: MeshedDestination,
      meshTls: MeshTls,
      onResumed: () => void,
      options: { readonly resume?: boolean; readonly timeoutMs?: number } = {},
    ): Promise<TLSSocket> {
      const resume = options.resume ?? true;
      const key = reuseKey(destination, meshTls);
      const timeoutMs = options.timeoutMs ?? MESH_CONNECT_TIMEOUT_MS;
      return new Promise((resolve, reject) => {
        const socket = tlsConnect({
          host: destination.host,
          port: destination.port,
          secureContext: meshTls.clientContext,
          // SNI names the expected identity as a host name (the SPIFFE ID itself is none: JSSE
          // answers it illegal_parameter); where it has none, Node's default (the host, or none for an IP).
          servername: serverNameForSpiffeId(destination.serverId),
          checkServerIdentity: requireServerIdentity(meshTls, destination.serverId, clock),
          session: resume ? sessions.get(key) : undefined,
        });
        socket.setNoDelay(true);
        socket.setKeepAlive(true, MESH_KEEPALIVE_MS);
        // Keepalive is for idle connections; this bounds a request sent into a dead one.
        socket.once('connect', () => watchRetransmissions(socket));
        const timer = setTimeout(() => {
          const stage = socket.connecting ? 'no TCP connection' : 'no TLS handshake';
          socket.destroy(
            new MeshConnectTimeoutError(
              `${stage} with ${destination.host}:${destination.port} within ${timeoutMs / 1000} s (the destination's proxy does not answer: gone, partitioned or filtered)`,
            ),
          );
        }, timeoutMs);
        socket.on('session', (session: Buffer) => {
          if (!resume) return;
          sessions.delete(key);
          sessions.set(key, session);
          if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
        });
        const onError = (error: Error) => {
          clearTimeout(timer);
          sessions.delete(key);
          reject(error);
        };
        socket.once('error', onError);
        socket.once('secureConnect', () => {
          clearTimeout(timer);
          socket.off('error', onError);
          if (socket.isSessionReused()) onResumed();
          resolve(socket);
        });
      });
    },
    /** Forget every session (new bundle or certificate). */
    clear: () => sessions.clear(),
  };
}
