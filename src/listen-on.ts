// Binding a daemon's (or the sidecar's) server to its address: resolves once it listens, or fails with the daemon's
// own LISTEN_FAILED code naming the address and the reason (EADDRINUSE, EACCES ...), never with
// an uncaught 'error' event. And the IPv6 twin of an IPv4 wildcard listener.
import { type AddressInfo, createServer, type Server } from 'node:net';
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

/**
 * Serves `server` on `::` too (IPv6-only, same port) when it listens on the IPv4 wildcard
 * `0.0.0.0`: in an IPv6-only pod the kubelet's probes and peers connect to the pod's IPv6 address,
 * which an IPv4 socket never sees. Its connections are handed to `server` ('connection', as Node's
 * http and tls servers take injected sockets), and it closes with `server`. Call once `server`
 * listens. Skipped where there is no IPv6, and when port 0 picked a port taken for IPv6.
 */
export async function listenIpv6WildcardTwin(
  server: Server,
  address: { readonly host: string; readonly port: number },
  failure: { readonly code: ErrorCode; readonly what: string },
): Promise<AddressInfo | undefined> {
  const host = address.host === '0.0.0.0' ? '::' : undefined;
  if (host === undefined) return undefined;
  const twin = createServer((socket) => server.emit('connection', socket));
  try {
    const { port } = server.address() as AddressInfo;
    await listenOn(twin, { host, port, ipv6Only: true }, { ...failure, what: `${failure.what}, IPv6` });
  } catch (error) {
    const cause = (error as MutualError).cause as NodeJS.ErrnoException | undefined;
    if (isNoIpv6Error(cause) || (address.port === 0 && cause?.code === 'EADDRINUSE')) return undefined;
    throw error;
  }
  server.once('close', () => twin.close());
  return twin.address() as AddressInfo;
}

/** `listenOn`, then on `::` too when the address is `0.0.0.0` (listenIpv6WildcardTwin). */
export async function listenDualStack(
  server: Server,
  address: { readonly host: string; readonly port: number },
  failure: { readonly code: ErrorCode; readonly what: string },
): Promise<void> {
  await listenOn(server, address, failure);
  await listenIpv6WildcardTwin(server, address, failure);
}

/** Errors binding an IPv6 socket that mean "this host or namespace has no IPv6": it is skipped. */
export function isNoIpv6Error(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL' || code === 'EPROTONOSUPPORT';
}
