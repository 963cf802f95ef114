import { createHash } from 'node:crypto';
import { readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MutualError } from '../../errors.ts';
import {
  DEFAULT_PROXY_UID,
  type Iptables,
  installInterceptRules,
  interceptRules,
} from '../../proxy/intercept/index.ts';
import { ip, mustRun, runCommand } from './commands.ts';
import { addBridge, addNamespace, deleteNamespace, listNamespaces } from './namespaces.ts';
import { podAppUid } from './plan-netns.ts';
import { createPod, type PodRecord } from './pod.ts';
import { candidateSubnets, cidrsIn, type MeshSubnet, overlaps, podAddress } from './subnet.ts';

// The network of a netns mesh: a bridge in a namespace of its own (so bridged pod traffic never
// meets the host's FORWARD chain), a veth from the host into it holding the mesh's .1 address
// (the host reaches every pod, pods reach the identity service there), and one namespace per
// pod. Everything is written to network.json in the state directory *before* it is made, so
// `removeMeshNetwork` finds it after any crash. No iptables rule is added on the host.

export const NETWORK_RECORD = 'network.json';
/** Where pod-readable files (join token, trust bundle) live, one directory per pod. */
export const RUN_ROOT = '/run/mutual';
/** /etc/netns/NAME/hosts is bind-mounted over /etc/hosts by `ip netns exec NAME`. */
export const ETC_NETNS = '/etc/netns';

/** network.json: everything a netns mesh created, for cleanup. */
export interface MeshNetworkRecord {
  readonly version: 1;
  /** The prefix of every name: mu + 6 hex digits of the state directory's hash. */
  readonly id: string;
  readonly stateDir: string;
  /** Unset until claimed. */
  readonly subnet: MeshSubnet | undefined;
  readonly bridgeNetns: string;
  readonly bridge: 'br0';
  /** The host's end of the veth into the bridge namespace. */
  readonly hostLink: string;
  readonly runDir: string;
  readonly pods: readonly PodRecord[];
}

export interface MeshNetwork {
  readonly record: MeshNetworkRecord;
  readonly subnet: MeshSubnet;
  pod(service: string): PodRecord;
}

export interface PodSpec {
  readonly service: string;
  readonly skipInboundPorts: readonly number[];
}

/** mu + 6 hex digits: per mesh (state directory), short enough for interface names (15 bytes). */
export function meshNetworkId(stateDir: string): string {
  return `mu${createHash('sha256').update(stateDir).digest('hex').slice(0, 6)}`;
}

export function networkRecordPath(stateDir: string): string {
  return join(stateDir, NETWORK_RECORD);
}

/**
 * Creates the mesh network and one pod per service: namespace, veth on the bridge, address,
 * /etc/hosts naming every service, proxy-init's iptables rules, a directory for its credentials.
 * On failure everything made so far is removed again.
 */
export async function createMeshNetwork(options: {
  stateDir: string;
  /** One pod per service; its skipped inbound ports are left out of interception. */
  services: ReadonlyArray<{ name: string; namespace: string; skipInboundPorts: readonly number[] }>;
  /** The proxy's uid (default 2102): its traffic is never redirected. */
  proxyUid?: number;
}): Promise<MeshNetwork> {
  const id = meshNetworkId(options.stateDir);
  const pods: PodSpec[] = options.services.map((service) => ({
    service: service.name,
    skipInboundPorts: service.skipInboundPorts,
  }));
  if (pods.length > 253) {
    throw new MutualError(
      'MUTUAL_MESH_NETNS_FAILED',
      `a netns mesh holds at most 253 services (one /24); this one has ${pods.length}`,
    );
  }
  let record: MeshNetworkRecord = {
    version: 1,
    id,
    stateDir: options.stateDir,
    subnet: undefined,
    // '--': a pod is `${id}-SERVICE` and no service name (a DNS label) starts with '-', so a
    // service called net cannot take the bridge's namespace.
    bridgeNetns: `${id}--net`,
    bridge: 'br0',
    hostLink: `${id}-host`,
    runDir: join(RUN_ROOT, id),
    pods: pods.map((pod, index) => ({
      service: pod.service,
      netns: `${id}-${pod.service}`,
      veth: `p${index}`,
      address: '',
      etcDir: join(ETC_NETNS, `${id}-${pod.service}`),
      dir: join(RUN_ROOT, id, pod.service),
      home: join(RUN_ROOT, id, `${pod.service}.home`),
      proxyGid: 0,
      iptablesChains: [],
    })),
  };
  // Leftovers under this id (a crash before network.json was written) are ours: clear them first.
  await sweepLeftovers(record);
  await writeRecord(record);
  try {
    await addNamespace(record.bridgeNetns);
    await addBridge(record.bridgeNetns, record.bridge);
    await ip([
      'link',
      'add',
      record.hostLink,
      'type',
      'veth',
      'peer',
      'name',
      'uplink',
      'netns',
      record.bridgeNetns,
    ]);
    await ip(['-n', record.bridgeNetns, 'link', 'set', 'uplink', 'master', record.bridge, 'up']);
    const subnet = await claimSubnet(record);
    await ip(['link', 'set', record.hostLink, 'up']);
    record = {
      ...record,
      subnet,
      pods: record.pods.map((pod, index) => ({
        ...pod,
        address: podAddress(subnet, index),
        // A group of its own per pod: its proxy reads its credentials, no other pod's.
        proxyGid: 2_100_000 + subnet.index * 256 + index,
        // A uid (and gid) of its own per pod's app: no app can signal, trace or read another's.
        appUid: podAppUid(subnet.index, index),
      })),
    };
    await writeRecord(record);
    const hosts = hostsFile(
      record,
      new Map(options.services.map((service) => [service.name, service.namespace])),
    );
    // As `mutual proxy init --proxy-uid UID --skip-inbound-ports LIST` would install them.
    const rules = (pod: PodSpec) =>
      interceptRules({
        proxyUid: options.proxyUid ?? DEFAULT_PROXY_UID,
        skipInboundPorts: pod.skipInboundPorts.map((port) => ({ from: port, to: port })),
      });
    const made = await Promise.allSettled(
      record.pods.map((pod, index) =>
        createPod(record, pod, {
          hosts,
          install: async () => {
            await installInterceptRules(rules(pods[index]!), iptablesIn(pod.netns));
          },
        }),
      ),
    );
    const failure = made.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    record = {
      ...record,
      pods: record.pods.map((pod) => ({ ...pod, iptablesChains: ['MUTUAL_INBOUND', 'MUTUAL_OUTBOUND'] })),
    };
    await writeRecord(record);
  } catch (error) {
    await removeMeshNetwork(record).catch(() => {});
    await rm(networkRecordPath(options.stateDir), { force: true });
    throw error;
  }
  const subnet = record.subnet!;
  const final = record;
  return {
    record: final,
    subnet,
    pod(service) {
      const pod = final.pods.find((candidate) => candidate.service === service);
      if (!pod) throw new Error(`no pod for service ${service}`);
      return pod;
    },
  };
}

/** iptables-save / iptables-restore run inside a pod's namespace. */
export function iptablesIn(netns: string): Iptables {
  return {
    saveNat: () => mustRun('ip', ['netns', 'exec', netns, 'iptables-save', '-t', 'nat']),
    restore: async (input) => {
      await mustRun('ip', ['netns', 'exec', netns, 'iptables-restore', '--noflush'], { input });
    },
  };
}

/** What `removeMeshNetwork` took away. */
export interface NetworkRemoval {
  readonly namespaces: number;
  readonly links: number;
  readonly directories: number;
}

/**
 * Removes everything the record names (and any namespace or link under its id it does not):
 * processes still in a pod are killed, namespaces deleted (with their veths and iptables
 * rules), the host link, /etc/netns/<ns>/ and /run/mutual/<id>/. Safe to call twice.
 */
export async function removeMeshNetwork(record: MeshNetworkRecord): Promise<NetworkRemoval> {
  let namespaces = 0;
  const pods = await Promise.all(record.pods.map((pod) => deleteNamespace(pod.netns)));
  namespaces += pods.filter(Boolean).length;
  if (await deleteNamespace(record.bridgeNetns)) namespaces++;
  const swept = await sweepLeftovers(record);
  namespaces += swept.namespaces;
  let directories = 0;
  for (const dir of [...record.pods.map((pod) => pod.etcDir), record.runDir]) {
    if (await exists(dir)) directories++;
    await rm(dir, { recursive: true, force: true });
  }
  await rmdir(RUN_ROOT).catch(() => {});
  // /etc/netns itself too once empty: `ip netns exec` needs it only while it holds something.
  await rmdir(ETC_NETNS).catch(() => {});
  return { namespaces, links: swept.links, directories };
}

/** Reads network.json of a state directory, or undefined when there is none. */
export async function readNetworkRecord(stateDir: string): Promise<MeshNetworkRecord | undefined> {
  let text: string;
  try {
    text = await readFile(networkRecordPath(stateDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const record = JSON.parse(text) as MeshNetworkRecord;
  if (record.version !== 1 || !/^mu[0-9a-f]{6}$/.test(record.id)) {
    throw new MutualError(
      'MUTUAL_MESH_NETNS_FAILED',
      `${networkRecordPath(stateDir)} is not a network record of this version of mutual; remove what it names by hand (ip netns list, ip link) and delete it`,
    );
  }
  return record;
}

export async function forgetNetworkRecord(stateDir: string): Promise<void> {
  await rm(networkRecordPath(stateDir), { force: true });
}

async function writeRecord(record: MeshNetworkRecord): Promise<void> {
  const file = networkRecordPath(record.stateDir);
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

/** Namespaces and the host link under this id that are still there. */
async function sweepLeftovers(record: MeshNetworkRecord): Promise<{ namespaces: number; links: number }> {
  let namespaces = 0;
  for (const name of await listNamespaces()) {
    if (name.startsWith(`${record.id}-`) && (await deleteNamespace(name))) namespaces++;
  }
  // Deleting the bridge namespace takes the host end of its veth along; a half-made one may remain.
  const link = await runCommand('ip', ['link', 'del', record.hostLink]);
  return { namespaces, links: link.code === 0 ? 1 : 0 };
}

/**
 * Gives the host link the .1 of a free /24. Two meshes starting at once may pick the same one:
 * each checks after adding its address, and the one whose link name sorts later moves on.
 */
async function claimSubnet(record: MeshNetworkRecord): Promise<MeshSubnet> {
  const start = Number.parseInt(record.id.slice(2), 16) % 512;
  const tried = new Set<number>();
  for (let attempt = 0; attempt < 16; attempt++) {
    const inUse = [
      ...cidrsIn(await ip(['-4', '-o', 'addr', 'show'])),
      ...cidrsIn(await ip(['-4', 'route', 'show', 'table', 'all'])),
    ];
    const subnet = candidateSubnets(start, inUse).find((candidate) => !tried.has(candidate.index));
    if (!subnet) break;
    tried.add(subnet.index);
    await ip(['addr', 'add', `${subnet.hostAddress}/${subnet.prefixLength}`, 'dev', record.hostLink]);
    const others = (await ip(['-4', '-o', 'addr', 'show']))
      .split('\n')
      .map((line) => /^\d+:\s+(\S+)\s+inet\s+(\S+)/.exec(line))
      .filter((match) => match !== null && match[1] !== record.hostLink && overlaps(match[2]!, subnet));
    if (others.every((match) => match![1]! > record.hostLink)) return subnet;
    await ip(['addr', 'del', `${subnet.hostAddress}/${subnet.prefixLength}`, 'dev', record.hostLink]);
  }
  throw new MutualError(
    'MUTUAL_MESH_NETNS_FAILED',
    'no free /24 in 198.18.0.0/15 for the mesh network: addresses or routes of this machine cover all of it; stop other netns meshes (`mutual down`) or free part of that range',
  );
}

/** The names every pod's /etc/hosts gives before any service's: a service cannot have one. */
export const POD_HOST_NAMES: readonly string[] = [
  'localhost',
  'ip6-localhost',
  'ip6-loopback',
  'mutual-host',
];

/** Why a service cannot be called `name` in a netns mesh, or undefined. */
export function podNameProblem(name: string): string | undefined {
  if (!POD_HOST_NAMES.includes(name)) return undefined;
  const where = name === 'mutual-host' ? "the host (the mesh's identity service)" : 'the loopback address';
  return `"${name}" names ${where} in every pod's /etc/hosts, so callers by this name would never reach the service; give it another name`;
}

/**
 * /etc/hosts of every pod: the host as mutual-host, and every service by name and by the names a
 * Kubernetes pod would use for it (`web.shop`, `web.shop.svc`, `web.shop.svc.cluster.local`, the
 * last as the destination table lists it). A hosts file has no search domains, so each is written out.
 */
export function hostsFile(record: MeshNetworkRecord, namespaces: ReadonlyMap<string, string>): string {
  const namesOf = (service: string) => {
    const namespace = namespaces.get(service);
    if (namespace === undefined) return service;
    const svc = `${service}.${namespace}.svc`;
    return [service, `${service}.${namespace}`, svc, `${svc}.cluster.local`].join(' ');
  };
  return [
    `# Written by mutual up for mesh ${record.id} (${record.stateDir}); removed by mutual down.`,
    `127.0.0.1\t${POD_HOST_NAMES[0]}`,
    `::1\t${POD_HOST_NAMES.slice(0, 3).join(' ')}`,
    `${record.subnet?.hostAddress ?? ''}\t${POD_HOST_NAMES[3]}`,
    ...record.pods.map((pod) => `${pod.address}\t${namesOf(pod.service)}`),
    '',
  ].join('\n');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
