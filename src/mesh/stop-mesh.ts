import type { MutualError } from '../errors.ts';
import {
  forgetNetworkRecord,
  type NetworkRemoval,
  readNetworkRecord,
  removeMeshNetwork,
  requireNetns,
} from './netns/index.ts';
import { isRunning, stopProcessGroup } from './processes.ts';
import { type MeshPaths, type MeshRuntime, removeRuntime, tryReadRuntime } from './runtime.ts';

/**
 * Stops every process group a runtime records: apps, sidecars and the destination service
 * together, the identity service last.
 */
export async function stopRuntime(runtime: MeshRuntime, graceMs = 5000): Promise<number> {
  const workloads = [
    ...runtime.services.flatMap((service) => [service.app, service.proxy]),
    ...(runtime.destination ? [runtime.destination] : []),
  ].filter((p) => p.pid > 0);
  const outcomes = await Promise.all(workloads.map((recorded) => stopProcessGroup(recorded, graceMs)));
  if (runtime.identity.pid > 0) outcomes.push(await stopProcessGroup(runtime.identity, graceMs));
  return outcomes.filter((outcome) => outcome !== 'not-running').length;
}

/**
 * Removes the network a netns mesh recorded in network.json (namespaces, veths, bridge, their
 * iptables rules, /etc/netns and /run/mutual directories), if any. Needs root.
 */
export async function removeLeftoverNetwork(stateDir: string): Promise<NetworkRemoval | undefined> {
  const record = await readNetworkRecord(stateDir);
  if (!record) return undefined;
  requireNetns(`removing the network of the netns mesh recorded in ${stateDir} (${record.id})`);
  const removal = await removeMeshNetwork(record);
  await forgetNetworkRecord(stateDir);
  return removal;
}

export interface DownResult {
  readonly wasRunning: boolean;
  /** Process groups `down` had to stop itself (the supervisor was gone or did not finish). */
  readonly leftovers: number;
  readonly supervisorPid: number | undefined;
  /** What `down` removed of a netns mesh's network itself (the supervisor had not). */
  readonly network: NetworkRemoval | undefined;
  /** runtime.json could not be read (this says why) and was removed; its processes are unknown. */
  readonly unreadableRuntime?: string;
}

/**
 * `mutual down`: asks the `mutual up` process to stop its mesh (SIGTERM, as Ctrl-C would), waits
 * for it, then stops whatever is left — also after `mutual up` itself was killed, including the
 * network of a netns mesh.
 */
export async function downMesh(paths: MeshPaths, options: { waitMs?: number } = {}): Promise<DownResult> {
  let runtime: MeshRuntime | undefined;
  try {
    runtime = await tryReadRuntime(paths);
  } catch (error) {
    if ((error as MutualError).code !== 'MUTUAL_MESH_RUNTIME_INVALID') throw error;
    // Nothing in it can be trusted to name processes; what can be cleaned is the file itself
    // (and a netns mesh's network, recorded apart in network.json).
    await removeRuntime(paths);
    const network = await removeLeftoverNetwork(paths.stateDir);
    return {
      wasRunning: false,
      leftovers: 0,
      supervisorPid: undefined,
      network,
      unreadableRuntime: (error as Error).message,
    };
  }
  if (!runtime) {
    // `mutual up` may have died after making the network and before writing runtime.json.
    const network = await removeLeftoverNetwork(paths.stateDir);
    return { wasRunning: network !== undefined, leftovers: 0, supervisorPid: undefined, network };
  }
  if (runtime.isolation === 'netns') requireNetns('`mutual down` of a netns mesh');
  const supervisor = runtime.supervisor;
  if (supervisor.pid !== process.pid && isRunning(supervisor)) {
    try {
      process.kill(supervisor.pid, 'SIGTERM');
    } catch {
      // Gone meanwhile.
    }
    const deadline = Date.now() + (options.waitMs ?? 15_000);
    while (isRunning(supervisor) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
  const leftovers = await stopRuntime(runtime);
  await removeRuntime(paths);
  const network = await removeLeftoverNetwork(paths.stateDir);
  return { wasRunning: true, leftovers, supervisorPid: supervisor.pid, network };
}
