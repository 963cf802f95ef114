import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { Clock } from '../../clock.ts';
import { type MeshTls, requireServerIdentity } from '../../tls/index.ts';
import { type MeshedDestination, reuseKey } from './destinations.ts';

const MAX_SESSIONS = 1024;

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
      options: { readonly resume?: boolean } = {},
    ): Promise<TLSSocket> {
      const resume = options.resume ?? true;
      const key = reuseKey(destination, meshTls);
      return new Promise((resolve, reject) => {
        const socket = tlsConnect({
          host: destination.host,
          port: destination.port,
          secureContext: meshTls.clientContext,
          // SNI is Node's default: the destination's host name, none for an IP address. Never the
          // SPIFFE ID, which is no host name (RFC 6066 §3): JSSE answers it illegal_parameter.
          checkServerIdentity: requireServerIdentity(meshTls, destination.serverId, clock),
          session: resume ? sessions.get(key) : undefined,
        });
        socket.setNoDelay(true);
        socket.on('session', (session: Buffer) => {
          if (!resume) return;
          sessions.delete(key);
          sessions.set(key, session);
          if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
        });
        const onError = (error: Error) => {
          sessions.delete(key);
          reject(error);
        };
        socket.once('error', onError);
        socket.once('secureConnect', () => {
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
