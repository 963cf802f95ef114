import { isRunning, stopProcessGroup } from './processes.ts';
import { type MeshPaths, type MeshRuntime, removeRuntime, tryReadRuntime } from './runtime.ts';

/** Stops every process group a runtime records: apps and sidecars together, the identity service last. */
export async function stopRuntime(runtime: MeshRuntime, graceMs = 5000): Promise<number> {
  const workloads = runtime.services
    .flatMap((service) => [service.app, service.proxy])
    .filter((p) => p.pid > 0);
  const outcomes = await Promise.all(workloads.map((recorded) => stopProcessGroup(recorded, graceMs)));
  if (runtime.identity.pid > 0) outcomes.push(await stopProcessGroup(runtime.identity, graceMs));
  return outcomes.filter((outcome) => outcome !== 'not-running').length;
}

export interface DownResult {
  readonly wasRunning: boolean;
  /** Process groups `down` had to stop itself (the supervisor was gone or did not finish). */
  readonly leftovers: number;
  readonly supervisorPid: number | undefined;
}

/**
 * `mutual down`: asks the `mutual up` process to stop its mesh (SIGTERM, as Ctrl-C would), waits
 * for it, then stops whatever is left — also after `mutual up` itself was killed.
 */
export async function downMesh(paths: MeshPaths, options: { waitMs?: number } = {}): Promise<DownResult> {
  const runtime = await tryReadRuntime(paths);
  if (!runtime) return { wasRunning: false, leftovers: 0, supervisorPid: undefined };
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
  return { wasRunning: true, leftovers, supervisorPid: supervisor.pid };
}
