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
import { readUpLock } from './up-lock.ts';

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
  /**
   * runtime.json could not be read (this says why) and was removed; its processes are unknown but
   * to the `mutual up` holding up.lock (`supervisorPid`), which was stopped.
   */
  readonly unreadableRuntime?: string;
}

/**
 * `mutual down`: asks the `mutual up` process to stop its mesh (SIGTERM, as Ctrl-C would), waits
 * for it, then stops whatever is left — also after `mutual up` itself was killed, including the
 * network of a netns mesh.
 */
/** SIGTERM to a running `mutual up`, then wait (up to `waitMs`) for it to stop what it started. */
async function stopSupervisor(
  supervisor: { pid: number; startTicks: number },
  waitMs = 15_000,
): Promise<void> {
  if (!isRunning(supervisor)) return;
  try {
    process.kill(supervisor.pid, 'SIGTERM');
    // An up stopped with Ctrl-Z (or kill -STOP) handles the SIGTERM once continued.
    process.kill(supervisor.pid, 'SIGCONT');
  } catch {
    // Gone meanwhile.
  }
  const deadline = Date.now() + waitMs;
  while (isRunning(supervisor) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

export async function downMesh(paths: MeshPaths, options: { waitMs?: number } = {}): Promise<DownResult> {
  let runtime: MeshRuntime | undefined;
  try {
    runtime = await tryReadRuntime(paths);
  } catch (error) {
    if ((error as MutualError).code !== 'MUTUAL_MESH_RUNTIME_INVALID') throw error;
    // Nothing in it can be trusted to name processes; what can be cleaned is the file itself
    // (and a netns mesh's network, recorded apart in network.json). A `mutual up` still running
    // is named by up.lock (pid and start time, checked): stopped, it stops what it started.
    await removeRuntime(paths);
    const holder = await readUpLock(paths.stateDir);
    if (holder && holder.pid !== process.pid) await stopSupervisor(holder, options.waitMs);
    const network = await removeLeftoverNetwork(paths.stateDir);
    return {
      wasRunning: holder !== undefined,
      leftovers: 0,
      supervisorPid: holder?.pid,
      network,
      unreadableRuntime: (error as Error).message,
    };
  }
  if (!runtime) {
    // An up still starting (runtime.json comes once its identity service is ready): stopping it
    // makes it stop what it started, as Ctrl-C does.
    const starting = await readUpLock(paths.stateDir);
    if (starting && starting.pid !== process.pid) {
      await stopSupervisor(starting, options.waitMs);
      const late = await tryReadRuntime(paths).catch(() => undefined);
      const leftovers = late ? await stopRuntime(late) : 0;
      if (late) await removeRuntime(paths);
      const network = await removeLeftoverNetwork(paths.stateDir);
      return { wasRunning: true, leftovers, supervisorPid: starting.pid, network };
    }
    // `mutual up` may have died after making the network and before writing runtime.json.
    const network = await removeLeftoverNetwork(paths.stateDir);
    return { wasRunning: network !== undefined, leftovers: 0, supervisorPid: undefined, network };
  }
  if (runtime.isolation === 'netns') requireNetns('`mutual down` of a netns mesh');
  const supervisor = runtime.supervisor;
  if (supervisor.pid !== process.pid) await stopSupervisor(supervisor, options.waitMs);
  const leftovers = await stopRuntime(runtime);
  await removeRuntime(paths);
  const network = await removeLeftoverNetwork(paths.stateDir);
  return { wasRunning: true, leftovers, supervisorPid: supervisor.pid, network };
}
