// Binding a daemon's (or the sidecar's) server to its address: resolves once it listens, or fails with the daemon's
// own LISTEN_FAILED code naming the address and the reason (EADDRINUSE, EACCES ...), never with
// an uncaught 'error' event.
import type { Server } from 'node:net';
import { type ErrorCode, MutualError } from './errors.ts';

export function listenOn(
  server: Server,
  address: { readonly host: string; readonly port: number; readonly ipv6Only?: boolean },
  failure: { readonly code: ErrorCode; readonly what: string },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) =>
      reject(
        new MutualError(
          failure.code,
          `cannot listen on ${address.host}:${address.port} (${failure.what}): ${error.code ?? error.message}`,
          { cause: error, detail: { host: address.host, port: address.port } },
        ),
      );
    server.once('error', onError);
    server.listen({ port: address.port, host: address.host, ipv6Only: address.ipv6Only ?? false }, () => {
      server.off('error', onError);
      // Once listening, an 'error' is a failed accept (EMFILE …): that connection is lost, the
      // server keeps listening, and the daemon must not die of an unhandled event.
      server.on('error', () => {});
      resolve();
    });
  });
}
