import { statSync } from 'node:fs';
import { ip, mustRun, runCommand } from './commands.ts';

// The building blocks of a pod network: named network namespaces (`ip netns`), a bridge in a
// namespace of its own, and one veth pair per pod from the bridge into the pod.

/** Where `ip netns add NAME` pins a namespace. */
export const NETNS_RUN_DIR = '/run/netns';

/** Creates a named network namespace with its loopback up. */
export async function addNamespace(name: string): Promise<void> {
  await ip(['netns', 'add', name]);
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
}

/**
 * A pod's namespace as a Kubernetes runtime makes it, before its link exists (each setting where
 * the kernel has it):
 * - Links made from now on get no IPv6 (no link-local address either); loopback keeps ::1. A pod
 *   has no IPv6 network, and proxy-init's rules are IPv4 ones: with a link-local address, an app
 *   listening on [::] (Node's and Go's default) would be reached from every other pod in plain
 *   text, past both sidecars.
 * - Every port may be bound by any uid (ip_unprivileged_port_start=0, as containerd and Docker set
 *   it), so an app that is not root listens on 80 as in a cluster. The namespace is the pod's own.
 */
export async function setPodSysctls(name: string): Promise<void> {
  const settings = [
    ['/proc/sys/net/ipv6/conf/default/disable_ipv6', '1'],
    ['/proc/sys/net/ipv4/ip_unprivileged_port_start', '0'],
  ];
  const script = settings
    .map(([file, value]) => `{ [ ! -e ${file} ] || echo ${value} > ${file}; }`)
    .join(' && ');
  await mustRun('ip', ['netns', 'exec', name, 'sh', '-c', script]);
}

/**
 * Kills whatever still runs in the namespace, then deletes it (and with it every interface,
 * veth peer and iptables rule inside). Returns false when there was no such namespace.
 */
export async function deleteNamespace(name: string): Promise<boolean> {
  if (!namespaceExists(name)) return false;
  const pids = await runCommand('ip', ['netns', 'pids', name]);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  const result = await runCommand('ip', ['netns', 'del', name]);
  if (result.code !== 0 && namespaceExists(name)) await ip(['netns', 'del', name]);
  return true;
}

export function namespaceExists(name: string): boolean {
  try {
    statSync(`${NETNS_RUN_DIR}/${name}`);
    return true;
  } catch {
    return false;
  }
}

/** The namespaces `ip netns list` shows. */
export async function listNamespaces(): Promise<string[]> {
  const result = await runCommand('ip', ['netns', 'list']);
  return result.stdout
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter(Boolean);
}

/** A bridge `bridge` (up) inside namespace `netns`. */
export async function addBridge(netns: string, bridge = 'br0'): Promise<void> {
  await ip(['-n', netns, 'link', 'add', bridge, 'type', 'bridge']);
  await ip(['-n', netns, 'link', 'set', bridge, 'up']);
}

/**
 * Joins a pod to a bridge: a veth pair whose one end (`veth`) is a port of the bridge and whose
 * other end is the pod's `eth0`, with `address/prefixLength`.
 */
export async function addPodLink(link: {
  bridgeNetns: string;
  bridge?: string;
  veth: string;
  netns: string;
  address: string;
  prefixLength: number;
}): Promise<void> {
  const { bridgeNetns, veth, netns } = link;
  await ip(['-n', bridgeNetns, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  await ip(['-n', bridgeNetns, 'link', 'set', veth, 'master', link.bridge ?? 'br0', 'up']);
  await ip(['-n', netns, 'addr', 'add', `${link.address}/${link.prefixLength}`, 'dev', 'eth0']);
  await ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
}

/**
 * argv that runs `command` inside a namespace (`ip netns exec`, which also bind-mounts
 * /etc/netns/NAME/* over /etc), as `uid`/`gid` through setpriv when given.
 */
export function inNamespace(
  netns: string,
  command: readonly string[],
  user?: { uid: number; gid?: number },
): string[] {
  const drop =
    user === undefined
      ? []
      : ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid ?? user.uid}`, '--clear-groups'];
  return ['ip', 'netns', 'exec', netns, ...drop, ...command];
}
