import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { Clock } from '../../clock.ts';
import { type MeshTls, requireServerIdentity, serverNameForSpiffeId } from '../../tls/index.ts';
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
          // SNI names the expected identity as a host name (the SPIFFE ID itself is none: JSSE
          // answers it illegal_parameter); where it has none, Node's default (the host, or none for an IP).
          servername: serverNameForSpiffeId(destination.serverId),
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
