import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { addNamespace, addPodLink, setPodSysctls } from './namespaces.ts';
import { APP_UID } from './plan-netns.ts';

/** One service's pod, as network.json records it. */
export interface PodRecord {
  readonly service: string;
  /** Its network namespace (`ip netns exec NAME …`). */
  readonly netns: string;
  /** The bridge's end of its veth pair (inside the bridge namespace); the pod's end is eth0. */
  readonly veth: string;
  /** Its address on the mesh network. */
  readonly address: string;
  /** /etc/netns/<netns>/: its /etc/hosts. */
  readonly etcDir: string;
  /** /run/mutual/<id>/<service>/: join token and trust bundle for its proxy, group proxyGid. */
  readonly dir: string;
  /**
   * /run/mutual/<id>/<service>.home/: the app's HOME, its own (caches, `go run`'s build cache); the
   * dot keeps it apart from every service's directory. Absent from records of older versions.
   */
  readonly home?: string;
  readonly proxyGid: number;
  /**
   * The uid and gid its app runs as: one of its own per pod (not shared with any other pod's app,
   * which could otherwise signal, read or ptrace it), as a pod's processes are out of reach of
   * another's in Kubernetes. Absent from records of older versions (their apps ran as 2103).
   */
  readonly appUid?: number;
  /** The iptables chains proxy-init installed in its namespace (gone with the namespace). */
  readonly iptablesChains: readonly string[];
}

/**
 * Makes one pod: namespace, link and address (IPv4 only), /etc/hosts, credentials directory, the
 * app's HOME, iptables rules.
 */
export async function createPod(
  network: { bridgeNetns: string; bridge: string; runDir: string },
  pod: PodRecord,
  options: { hosts: string; install: () => Promise<void> },
): Promise<void> {
  await addNamespace(pod.netns);
  await setPodSysctls(pod.netns);
  await addPodLink({
    bridgeNetns: network.bridgeNetns,
    bridge: network.bridge,
    veth: pod.veth,
    netns: pod.netns,
    address: pod.address,
    prefixLength: 24,
  });
  await mkdir(pod.etcDir, { recursive: true, mode: 0o755 });
  await writeFile(join(pod.etcDir, 'hosts'), options.hosts, { mode: 0o644 });
  await mkdir(network.runDir, { recursive: true, mode: 0o755 });
  await chmod(network.runDir, 0o755);
  await mkdir(pod.dir, { mode: 0o750 });
  await chown(pod.dir, 0, pod.proxyGid);
  if (pod.home !== undefined) {
    await mkdir(pod.home, { mode: 0o700 });
    await chown(pod.home, pod.appUid ?? APP_UID, pod.appUid ?? APP_UID);
  }
  await options.install();
}
