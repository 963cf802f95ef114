import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv4, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MutualError } from '../../errors.ts';
import { canonicalIp, isLoopbackIp } from '../../ip/index.ts';

// Where a redirected connection was really going: SO_ORIGINAL_DST (IPv4, iptables) or
// IP6T_SO_ORIGINAL_DST (IPv6, ip6tables) through the native addon in native/origdst (built on
// install by `npm run build:native`). Loaded on first use, so commands that never intercept do
// not need it.

export interface OriginalDestination {
  /** Dotted IPv4, or IPv6 as inet_ntop writes it (`2001:2::3`; a link-local one ends in `%ifname`). */
  readonly address: string;
  readonly port: number;
  readonly family: 'IPv4' | 'IPv6';
}

interface OrigdstAddon {
  /** family 0: from the socket's local address (IPv4-mapped counts as IPv4). */
  originalDst(fd: number, family: 0 | 4 | 6): OriginalDestination;
}

/** Path of the built addon, relative to the package root. */
export const ADDON_PATH = 'native/origdst/build/Release/origdst.node';

let addon: OrigdstAddon | MutualError | undefined;

/**
 * The destination the peer dialled before iptables / ip6tables REDIRECT rewrote it, in the
 * connection's own family (an IPv4 connection on a dual-stack `::` socket is IPv4); undefined when
 * the socket has no file descriptor (already closed, or not a TCP socket). A connection that was
 * not redirected reports its own local address: check with `isSelfDestination` before forwarding.
 */
export function originalDestination(socket: Socket): OriginalDestination | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  return readOriginalDestination(fd, isIPv4Socket(socket) ? 4 : 6);
}

/** The same, for a raw file descriptor (for tests and non-net.Socket users); family 0 asks the socket. */
export function readOriginalDestination(fd: number, family: 0 | 4 | 6 = 0): OriginalDestination {
  addon ??= loadOrigdstAddon();
  if (addon instanceof MutualError) throw addon;
  const loaded = addon;
  try {
    return loaded.originalDst(fd, family);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
    throw new MutualError(
      'MUTUAL_PROXY_ORIGINAL_DST_FAILED',
      `cannot read the original destination of fd ${fd}: ${(error as Error).message} (${code})`,
      { cause: error, detail: { errno: code } },
    );
  }
}

/**
 * Loads the addon from `path` (default: the package's build output). Returns the error instead
 * of throwing so the caller can remember it and fail fast on every later connection.
 */
export function loadOrigdstAddon(path = join(packageRoot(), ADDON_PATH)): OrigdstAddon | MutualError {
  try {
    return createRequire(import.meta.url)(path) as OrigdstAddon;
  } catch (error) {
    return new MutualError(
      'MUTUAL_PROXY_ORIGINAL_DST_UNAVAILABLE',
      `transparent mode needs the native addon ${path}, which could not be loaded (${(error as Error).message.split('\n')[0]}): run \`npm run build:native\` in ${packageRoot()}`,
      { cause: error },
    );
  }
}

/**
 * True when `destination` is the listener itself: a connection made straight to the proxy port
 * rather than redirected. Forwarding it would loop back into the proxy forever.
 */
export function isSelfDestination(
  destination: Pick<OriginalDestination, 'address' | 'port'>,
  listener: { readonly address: string; readonly port: number },
): boolean {
  if (destination.port !== listener.port) return false;
  const address = canonicalIp(destination.address) ?? destination.address;
  const listening = canonicalIp(listener.address) ?? listener.address;
  if (address === listening) return true;
  if (listening !== '0.0.0.0' && listening !== '::') return false;
  return isLocalAddress(address);
}

function isLocalAddress(address: string): boolean {
  if (isLoopbackIp(address) || address === '0.0.0.0' || address === '::') return true;
  return Object.values(networkInterfaces()).some((addresses) =>
    addresses?.some((local) => canonicalIp(local.address) === address),
  );
}

/** IPv4, or IPv4-mapped on a dual-stack AF_INET6 socket (whose local address canonicalIp unwraps). */
function isIPv4Socket(socket: Socket): boolean {
  return socket.localFamily === 'IPv4' || isIPv4(canonicalIp(socket.localAddress) ?? '');
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}
