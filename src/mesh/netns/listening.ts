import { readFile, stat } from 'node:fs/promises';
import type { WaitOutcome } from '../readiness.ts';
import { runCommand } from './commands.ts';
import { NETNS_RUN_DIR } from './namespaces.ts';

// Whether an app inside a pod listens on a port where its sidecar reaches it (127.0.0.1; callers
// at the pod's address for a skipped inbound port), seen
// from the host without entering the pod: /proc/PID/net/tcp lists the sockets of PID's network
// namespace, and `ss -N NETNS` tells a dual-stack [::] (`*`) from an IPv6-only one (`[::]`).

/** The app listens on the port, but only at addresses its sidecar's 127.0.0.1 does not reach. */
export interface UnreachableListen {
  readonly kind: 'unreachable';
  readonly problem: string;
}

/**
 * Undefined when process `pid` is inside namespace `netns` and something there listens on TCP
 * `port` at an address 127.0.0.1 reaches; otherwise what is missing (a listener its sidecar cannot
 * reach is an `UnreachableListen`).
 */
export async function podListenProblem(
  pid: number,
  netns: string,
  port: number,
  /** Where connections to the app come from: its sidecar (127.0.0.1), or callers at the pod's address (a skipped inbound port). */
  reachedFrom = LOOPBACK,
): Promise<string | UnreachableListen | undefined> {
  try {
    const [own, pods] = await Promise.all([stat(`/proc/${pid}/ns/net`), stat(`${NETNS_RUN_DIR}/${netns}`)]);
    if (own.ino !== pods.ino || own.dev !== pods.dev) return `process ${pid} has not entered ${netns} yet`;
    const tables = await Promise.all(
      ['tcp', 'tcp6'].map((table) => readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')),
    );
    if (!tables.some((table) => listensOn(table, port))) return `nothing listens on port ${port} in ${netns}`;
  } catch (error) {
    return `cannot inspect process ${pid}: ${(error as Error).message}`;
  }
  const listed = await runCommand('ss', ['-N', netns, '-H', '-l', '-t', '-n']);
  if (listed.code !== 0) return undefined; // no ss to ask: listening is all we can tell
  const addresses = listenAddresses(listed.stdout, port);
  if (addresses.length === 0 || addresses.some((address) => isReachedFrom(address, reachedFrom)))
    return undefined;
  const only = `it listens on port ${port} only at ${addresses.map(describeAddress).join(', ')}`;
  return {
    kind: 'unreachable',
    problem:
      reachedFrom === LOOPBACK
        ? `${only}, and its sidecar forwards to 127.0.0.1:${port}; listen on 0.0.0.0, 127.0.0.1 or a dual-stack [::] (no host: the default of most servers)`
        : `${only}, and callers reach this skipped inbound port at ${reachedFrom}:${port}, past the sidecar; listen on 0.0.0.0 or a dual-stack [::] (no host: the default of most servers)`,
  };
}

/** True when a /proc/net/tcp{,6} table has a socket in LISTEN (state 0A) on `port`. */
export function listensOn(table: string, port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return table
    .split('\n')
    .slice(1)
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1]?.endsWith(`:${hexPort}`) === true && fields[3] === '0A';
    });
}

/**
 * The local addresses of the listening sockets on `port` in `ss -H -l -t -n` output, as ss
 * prints them: `0.0.0.0`, `127.0.0.1`, `*` (dual-stack wildcard), `[::]` (IPv6 only), `[::1]`,
 * `198.18.0.2`, `127.0.0.1%lo` (bound to a device).
 */
export function listenAddresses(ssOutput: string, port: number): string[] {
  const addresses: string[] = [];
  for (const line of ssOutput.split('\n')) {
    const local = line.trim().split(/\s+/)[3];
    const match = local === undefined ? null : /^(.*):(\d+)$/.exec(local);
    if (match && Number(match[2]) === port) addresses.push(match[1]!);
  }
  return addresses;
}

const LOOPBACK = '127.0.0.1';

/**
 * Whether a connection to IPv4 address `to` (127.0.0.1, or the pod's address arriving on eth0)
 * reaches a socket listening at this (ss-printed) address.
 */
export function isReachedFrom(address: string, to: string): boolean {
  const [host = '', device] = address.split('%');
  if (device !== undefined && device !== (to === LOOPBACK ? 'lo' : 'eth0')) return false; // another device
  return ['*', '0.0.0.0', '[::ffff:0.0.0.0]', to, `[::ffff:${to}]`].includes(host);
}

function describeAddress(address: string): string {
  if (address === '[::]') return '[::] (IPv6 only)';
  return address;
}

/** Polls `podListenProblem` until it is solved, the process is gone, or the deadline passes. */
export async function waitForPodListen(
  pid: number,
  netns: string,
  port: number,
  options: { deadlineMs: number; isAlive: () => boolean; reachedFrom?: string },
): Promise<WaitOutcome> {
  let delayMs = 10;
  // An app may bind its addresses one after the other: a listener out of the sidecar's reach is
  // final once it has stayed alone for a second.
  let unreachableSinceMs: number | undefined;
  for (;;) {
    const found = await podListenProblem(pid, netns, port, options.reachedFrom);
    if (found === undefined) return { ok: true };
    const last = typeof found === 'string' ? found : found.problem;
    if (typeof found === 'string') unreachableSinceMs = undefined;
    else unreachableSinceMs ??= Date.now();
    if (!options.isAlive()) return { ok: false, reason: 'exited', last };
    if (unreachableSinceMs !== undefined && Date.now() - unreachableSinceMs >= 1_000)
      return { ok: false, reason: 'unreachable', last };
    if (Date.now() >= options.deadlineMs) return { ok: false, reason: 'timeout', last };
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(200, delayMs * 2);
  }
}
