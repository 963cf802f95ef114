// At most so many open connections per client address on a control-plane API port (the identity
// and destination services). Every connection costs a file descriptor and tens of KB (its TLS
// state), and a long poll keeps one for a minute on a single request, so without a cap one client
// could hold most descriptors of the process while the oldest-first limit on all connections
// (connection-limit.ts) kept closing other clients' held polls to make room for its. Past the cap a
// new connection from that address is closed at once, before its TLS handshake; other addresses are
// not affected.
import type { Server, Socket } from 'node:net';
import { canonicalIp } from '../ip/index.ts';

/**
 * A sidecar keeps one or two connections to each service (a long poll, and one to certify or look
 * up); 1024 leaves
 * room for the sidecars of a node that share its address (hostNetwork pods, a NAT, or one machine
 * running `mutual up`), while a single client holds at most ~1024 descriptors and ~70 MB.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1024;

export interface ConnectionCapOptions {
  readonly maxPerAddress: number;
  /** Called for each connection closed at the cap (before it is destroyed), with its address key. */
  readonly onRefused: (socket: Socket, addressKey: string) => void;
}

/** Counts `server`'s open connections by client address key and closes those past the cap. */
export function capConnectionsPerAddress(server: Server, options: ConnectionCapOptions): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const key = addressKey(socket.remoteAddress);
    const count = open.get(key) ?? 0;
    if (count >= options.maxPerAddress) {
      options.onRefused(socket, key);
      socket.destroy();
      return;
    }
    open.set(key, count + 1);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left === 0) open.delete(key);
      else open.set(key, left);
    });
  });
}

/**
 * What connections are counted by: the canonical address (IPv4-mapped IPv6 as IPv4), and an IPv6
 * address by its /64, the block one host is usually given (it can take any address in it).
 */
export function addressKey(remoteAddress: string | undefined): string {
  const address = canonicalIp(remoteAddress) ?? remoteAddress ?? 'unknown';
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = address.includes('::')
    ? [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
    : headGroups;
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}
