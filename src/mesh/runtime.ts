import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MutualError } from '../errors.ts';
import type { LivenessSettings } from './liveness.ts';

/** Where everything of one mesh lives inside its state directory. */
export interface MeshPaths {
  readonly stateDir: string;
  readonly caDir: string;
  readonly bundle: string;
  readonly tokensDir: string;
  readonly logsDir: string;
  readonly runtimeFile: string;
  /** What the destination service answers from (destinations.yaml), written by `mutual up`. */
  readonly destinationTable: string;
}

export function meshPaths(stateDir: string): MeshPaths {
  const dir = resolve(stateDir);
  return {
    stateDir: dir,
    caDir: join(dir, 'ca'),
    bundle: join(dir, 'ca', 'bundle.pem'),
    tokensDir: join(dir, 'tokens'),
    logsDir: join(dir, 'logs'),
    runtimeFile: join(dir, 'runtime.json'),
    destinationTable: join(dir, 'destinations.yaml'),
  };
}

/** A process the mesh started: its group id is its pid (each runs in its own process group). */
export interface RuntimeProcess {
  readonly pid: number;
  /** Kernel start time (/proc/PID/stat field 22), so a recycled pid is never taken for ours. */
  readonly startTicks: number;
  readonly log: string;
  readonly argv: readonly string[];
  /** How many times `up` has started it again after it exited (restarts.ts); absent before the first. */
  readonly restarts?: number;
  /** How the process before this one ended, when this one is a restart. */
  readonly lastExit?: LastExit;
  /** How this process ended, when its restart policy says not to start it again. */
  readonly exit?: LastExit;
}

/**
 * How a process ended: its code or signal, and, when `up` killed it because it stopped answering
 * its liveness probe, `reason: 'liveness'` and what the probe saw (as a pod's lastState.terminated).
 */
export interface LastExit {
  readonly code: number | null;
  readonly signal: string | null;
  readonly at: string;
  readonly reason?: 'liveness';
  /** `did not answer /live 3 times in 30 s (no answer within 1 s)` */
  readonly message?: string;
}

export interface RuntimeService {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  readonly labels: Readonly<Record<string, string>>;
  /**
   * Declared port → where the app listens on 127.0.0.1 and where the sidecar accepts mTLS for it
   * (netns mode: inside the pod, appPort is the declared port and inboundPort the transparent 4143).
   */
  readonly ports: ReadonlyArray<{
    readonly port: number;
    readonly protocol: 'http' | 'tcp';
    readonly appPort: number;
    readonly inboundPort: number | undefined;
  }>;
  readonly upstreams: ReadonlyArray<{
    readonly service: string;
    readonly port: number;
    readonly env: string;
    /** Where the app connects (plain text). */
    readonly localAddress: string;
  }>;
  readonly adminUrl: string;
  /** netns mode: the service's network namespace and its address on the mesh network. */
  readonly pod?: { readonly netns: string; readonly address: string };
  readonly app: RuntimeProcess;
  readonly proxy: RuntimeProcess;
}

/** runtime.json: what `mutual up` started, for `down`, `logs`, `check`, `edges` and `identity`. */
export interface MeshRuntime {
  readonly version: 1;
  readonly file: string;
  readonly trustDomain: string;
  /** Policy directory every sidecar watches, when mesh.yaml names one. */
  readonly policyDir?: string;
  readonly stateDir: string;
  readonly startedAt: string;
  readonly supervisor: { readonly pid: number; readonly startTicks: number };
  /** Absent in runtimes written before netns mode existed: loopback. */
  readonly isolation?: 'loopback' | 'netns';
  /** netns mode: the mesh network (everything it holds is listed in `record`, network.json). */
  readonly network?: {
    readonly id: string;
    readonly subnet: string;
    readonly hostAddress: string;
    readonly bridgeNetns: string;
    readonly hostLink: string;
    readonly record: string;
  };
  readonly identity: RuntimeProcess & { readonly apiUrl: string; readonly adminUrl: string };
  /** The destination service; absent in runtimes written before `mutual up` started one. */
  readonly destination?: RuntimeProcess & {
    readonly apiUrl: string;
    readonly adminUrl: string;
    /** Its SPIFFE ID, which the proxies (and `mutual check`) require it to present. */
    readonly serverId: string;
    readonly tableFile: string;
  };
  readonly services: readonly RuntimeService[];
  /** How `up` probes the control plane's and the sidecars' /live; absent before it did. */
  readonly liveness?: LivenessSettings;
}

export async function writeRuntime(paths: MeshPaths, runtime: MeshRuntime): Promise<void> {
  const temporary = `${paths.runtimeFile}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(runtime, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, paths.runtimeFile);
}

/** Forgets a stopped mesh: runtime.json and the destination table written from it. */
export async function removeRuntime(paths: MeshPaths): Promise<void> {
  await rm(paths.runtimeFile, { force: true });
  await rm(paths.destinationTable, { force: true });
}

/** The runtime of the mesh in `stateDir`, or undefined when none was recorded. */
export async function tryReadRuntime(paths: MeshPaths): Promise<MeshRuntime | undefined> {
  let text: string;
  try {
    text = await readFile(paths.runtimeFile, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') throw stateDirNotADirectory(paths);
    throw new MutualError(
      'MUTUAL_IO_READ_FAILED',
      `cannot read ${paths.runtimeFile}: ${(error as Error).message}`,
    );
  }
  let parsed: unknown;
  let problem: string | undefined;
  try {
    parsed = JSON.parse(text);
    problem = runtimeProblem(parsed);
  } catch (error) {
    problem = (error as Error).message.replace(/\s+/g, ' ');
  }
  if (problem === undefined) return parsed as MeshRuntime;
  throw new MutualError(
    'MUTUAL_MESH_RUNTIME_INVALID',
    `${paths.runtimeFile} is not a runtime file of this version of mutual (${problem}); \`mutual down --state-dir ${paths.stateDir}\` removes it`,
  );
}

/**
 * What makes a parsed runtime.json unusable, or undefined: the fields `check`, `down`, `edges` and
 * `identity` rely on, so a file cut short or edited is one clear error, not "service.ports is not
 * iterable" from deep inside a check.
 */
function runtimeProblem(value: unknown): string | undefined {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const isProcess = (v: unknown): v is Record<string, unknown> => isObject(v) && typeof v.pid === 'number';
  if (!isObject(value)) return 'not a JSON object';
  if (value.version !== 1) return `version ${JSON.stringify(value.version)}, expected 1`;
  if (typeof value.trustDomain !== 'string') return 'no trustDomain';
  if (!isProcess(value.supervisor)) return 'no supervisor pid';
  const identity = value.identity;
  if (!isProcess(identity) || typeof identity.adminUrl !== 'string' || typeof identity.apiUrl !== 'string')
    return 'no identity service (pid, adminUrl, apiUrl)';
  if (!Array.isArray(value.services)) return 'no services list';
  for (const [index, service] of value.services.entries()) {
    const name = isObject(service) && typeof service.name === 'string' ? service.name : undefined;
    if (
      !isObject(service) ||
      name === undefined ||
      typeof service.spiffeId !== 'string' ||
      typeof service.adminUrl !== 'string' ||
      !isProcess(service.app) ||
      !isProcess(service.proxy) ||
      !Array.isArray(service.ports) ||
      !Array.isArray(service.upstreams)
    )
      return `service ${name ?? index + 1} lacks name, spiffeId, adminUrl, app, proxy, ports or upstreams`;
  }
  return undefined;
}

/**
 * A --state-dir that names a file (or runs through one) holds no mesh: said as such, instead of
 * "cannot read …/runtime.json: ENOTDIR" or "no logs in …/logs".
 */
export function stateDirNotADirectory(paths: MeshPaths): MutualError {
  return new MutualError(
    'MUTUAL_MESH_NOT_RUNNING',
    `--state-dir ${paths.stateDir} is not a directory (a file is in the way), so no mesh runs from it; pass the directory \`mutual up\` was started with (default .mutual)`,
  );
}

/** Throws stateDirNotADirectory where --state-dir names a file or runs through one; a missing one is fine. */
export async function requireStateDirectory(paths: MeshPaths): Promise<void> {
  const found = await stat(paths.stateDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOTDIR') throw stateDirNotADirectory(paths);
    return undefined;
  });
  if (found && !found.isDirectory()) throw stateDirNotADirectory(paths);
}

/** The runtime, or MUTUAL_MESH_NOT_RUNNING saying how to start one. */
export async function readRuntime(paths: MeshPaths): Promise<MeshRuntime> {
  const runtime = await tryReadRuntime(paths);
  if (!runtime) {
    throw new MutualError(
      'MUTUAL_MESH_NOT_RUNNING',
      // The catalogue's hint (printed under it) says how to start one.
      `no mesh is running from ${paths.stateDir} (no runtime.json)`,
    );
  }
  return runtime;
}

export function findService(runtime: MeshRuntime, name: string): RuntimeService {
  const service = runtime.services.find((candidate) => candidate.name === name);
  if (!service) {
    throw new MutualError(
      'MUTUAL_MESH_SERVICE_UNKNOWN',
      `the mesh has no service "${name}"; it has ${runtime.services.map((s) => s.name).join(', ')}`,
    );
  }
  return service;
}
