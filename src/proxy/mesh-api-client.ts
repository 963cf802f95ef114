// A GET client for the control plane's mTLS APIs (the destination service's destinations and
// policies): one HTTP/2 connection made with the proxy's own SVID, the server verified by its
// SPIFFE ID, a new connection when the proxy's certificate or bundle changes. Every request is
// bounded in time and size; a connection that does not answer in time is dropped.
import { type ClientHttp2Session, connect, constants } from 'node:http2';
import type { Clock } from '../clock.ts';
import { type MeshTls, requireServerIdentity } from '../tls/index.ts';

export interface MeshApiClientOptions {
  /** e.g. https://mutual-destination.mutual-system.svc:8086 */
  readonly url: string;
  /** The server's SPIFFE ID, given the proxy's current TLS generation (for its trust domain). */
  readonly serverId: (meshTls: MeshTls) => string;
  readonly meshTls: () => MeshTls | undefined;
  readonly clock: Clock;
  readonly maxAnswerBytes: number;
}

export interface MeshApiClient {
  /** GET `path`; settles within `timeoutMs` (the stream is cancelled, the connection dropped). */
  get(path: string, timeoutMs: number): Promise<{ status: number; text: string }>;
  close(): void;
}

/** The default SPIFFE ID of the destination service in the proxy's trust domain. */
export function destinationServerId(meshTls: MeshTls): string {
  return `spiffe://${new URL(meshTls.credentials.spiffeId).host}/ns/mutual-system/sa/destination`;
}

export function createMeshApiClient(options: MeshApiClientOptions): MeshApiClient {
  const base = new URL(options.url);
  let session: ClientHttp2Session | undefined;
  let sessionGeneration = -1;

  function currentSession(meshTls: MeshTls): ClientHttp2Session {
    if (session && !session.closed && !session.destroyed && sessionGeneration === meshTls.generation)
      return session;
    // A new certificate or bundle: new requests go over a new connection; the old one drains.
    session?.close();
    const next = connect(base.origin, {
      secureContext: meshTls.clientContext,
      checkServerIdentity: requireServerIdentity(meshTls, options.serverId(meshTls), options.clock),
      minVersion: 'TLSv1.3',
    });
    next.on('error', () => {});
    next.once('close', () => {
      if (session === next) session = undefined;
    });
    session = next;
    sessionGeneration = meshTls.generation;
    return next;
  }

  return {
    get(path, timeoutMs) {
      const meshTls = options.meshTls();
      if (!meshTls) return Promise.reject(new Error('the proxy has no certificate yet'));
      const current = currentSession(meshTls);
      return new Promise((resolve, reject) => {
        let status = 0;
        let size = 0;
        const chunks: Buffer[] = [];
        let sessionError: Error | undefined;
        const onSessionError = (error: Error) => {
          sessionError = error;
        };
        current.once('error', onSessionError);
        const stream = current.request({ ':method': 'GET', ':path': path });
        const timer = setTimeout(() => {
          finish(new Error(`no answer within ${timeoutMs} ms`));
          // A connection that cannot answer in time is not trusted with the next request either.
          current.destroy();
        }, timeoutMs);
        let isDone = false;
        function finish(error?: Error) {
          if (isDone) return;
          isDone = true;
          clearTimeout(timer);
          current.off('error', onSessionError);
          if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
          if (error) reject(error);
          else resolve({ status, text: Buffer.concat(chunks).toString('utf8') });
        }
        stream.on('response', (headers) => {
          status = Number(headers[':status'] ?? 0);
        });
        stream.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxAnswerBytes) finish(new Error('the answer is too large'));
          else chunks.push(chunk);
        });
        stream.on('end', () => finish());
        stream.on('error', (error) => finish(sessionError ?? error));
        stream.on('close', () =>
          finish(sessionError ?? new Error('the connection closed before the answer')),
        );
      });
    },
    close() {
      session?.destroy();
      session = undefined;
    },
  };
}
