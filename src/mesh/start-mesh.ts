import { constants, unwatchFile, watchFile } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import type { Clock } from '../clock.ts';
import { formatDuration } from '../config/index.ts';
import { isMutualError, MutualError } from '../errors.ts';
import { REVOKED_TOKENS_FILE } from '../identity/index.ts';
import { isLoopbackIp } from '../ip/index.ts';
import { diagnosticsError, loadPolicyFiles } from '../policy/index.ts';
import { makeDirectory } from '../store/index.ts';
import { appLiveness } from './app-liveness.ts';
import { formatSocket, isPortFree, listeningSocketsOf } from './app-sockets.ts';
import { meshDestinationTable, writeDestinationTable } from './destination-table.ts';
import { createTokenWriter } from './join-tokens.ts';
import { rotateLogsEvery } from './log-rotation.ts';
import { ensureMeshCa, type MeshCa } from './mesh-ca.ts';
import type { MeshConfig } from './mesh-config.ts';
import {
  createMeshNetwork,
  forgetNetworkRecord,
  type MeshNetwork,
  type NetworkRemoval,
  planNetnsMesh,
  podAppAccessProblem,
  podNameProblem,
  podPortProblem,
  podProgramProblem,
  podRuntimeAccessProblem,
  readNetworkRecord,
  removeMeshNetwork,
  requireNetns,
  waitForPodListen,
} from './netns/index.ts';
import { defaultAppPath, type MeshPlan, planMesh, portsNeeded, type ServicePlan } from './plan.ts';
import {
  allocateLoopbackPorts,
  isRunning,
  type LoggedProcess,
  processStartTicks,
  spawnLogged,
  tailFile,
} from './processes.ts';
import { type WaitOutcome, waitForHttpReady, waitForTcp } from './readiness.ts';
import { type Restartable, type RestartEvent, type RestartRecord, superviseRestarts } from './restarts.ts';
import {
  type LastExit,
  type MeshPaths,
  type MeshRuntime,
  meshPaths,
  type RuntimeService,
  removeRuntime,
  tryReadRuntime,
  writeRuntime,
} from './runtime.ts';
import { isShellCommand, shellScriptProgram } from './shell-program.ts';
import { removeLeftoverNetwork, stopRuntime } from './stop-mesh.ts';
import { claimUpLock } from './up-lock.ts';

/** Join tokens are minted again every 6 hours while the mesh runs (they live a day). */
const TOKEN_REFRESH_MS = 6 * 3_600_000;

export type MeshProgress =
  | { kind: 'stale-cleaned'; stopped: number; network?: NetworkRemoval }
  | { kind: 'ca'; ca: MeshCa; dir: string }
  | { kind: 'network'; id: string; subnet: string; pods: number; elapsedMs: number }
  | { kind: 'identity-ready'; apiUrl: string; elapsedMs: number }
  | { kind: 'destination-ready'; apiUrl: string; entries: number; elapsedMs: number }
  | { kind: 'tokens'; count: number; dir: string; access: string }
  /** Join tokens minted again at once because `mutual identity token revoke` changed the revocations. */
  | { kind: 'tokens-reminted'; count: number; file: string }
  | { kind: 'service-ready'; service: RuntimeService; elapsedMs: number }
  /** A process of the running mesh exited (and is started again in restartInMs), or was started again. */
  | RestartEvent
  | { kind: 'port-taken'; what: string; log: string }
  /** An app listens, but not on the $PORT it was given (it will not be ready): where it does. */
  | {
      kind: 'app-elsewhere';
      service: string;
      port: number;
      appPort: number;
      /** The variable that holds appPort: PORT for the first port, PORT_<port> for each. */
      variable: string;
      listening: readonly string[];
    }
  /** A loopback mesh's app listening on more than loopback: reachable without its sidecar. */
  | { kind: 'app-exposed'; service: string; sockets: readonly string[] }
  /**
   * runtime.json could not be written after a restart (state directory read-only, disk full):
   * check, logs, dashboard follow the process before it; once, until a later write succeeds.
   */
  | { kind: 'runtime-unrecorded'; file: string; message: string }
  /** runtime.json written again after a runtime-unrecorded. */
  | { kind: 'runtime-recorded'; file: string };

export interface MeshDeps {
  readonly clock: Clock;
  /** loopback (default): ports on 127.0.0.1; netns: one network namespace per service (root). */
  readonly isolation?: 'loopback' | 'netns';
  readonly stateDir: string;
  readonly nodePath: string;
  readonly mutualBin: string;
  readonly baseEnv: Readonly<Record<string, string | undefined>>;
  /** How long every process together may take to become ready. */
  readonly readyTimeoutMs: number;
  readonly onProgress: (event: MeshProgress) => void;
  /** Aborted (Ctrl-C during start): stop waiting, stop what was started, reject. */
  readonly signal?: AbortSignal;
  /** Picks the mesh's free ports (allocateLoopbackPorts unless told). */
  readonly allocatePorts?: (count: number, host?: string) => Promise<number[]>;
}

export interface Mesh {
  readonly runtime: MeshRuntime;
  readonly paths: MeshPaths;
  /** Stops every process (SIGTERM to each group, SIGKILL after a grace period) and forgets the runtime. */
  close(): Promise<void>;
}

/**
 * `mutual up`: CA, join tokens, the identity service, then the destination service (answering
 * from destinations.yaml, written from the plan) beside every sidecar, then every app; back only
 * when every sidecar is ready and every app accepts connections. In netns mode the mesh network
 * (a pod per service) is made first and removed again on close. On any failure everything
 * started so far is stopped and the error names the process and its log.
 */
export async function startMesh(config: MeshConfig, deps: MeshDeps): Promise<Mesh> {
  const isolation = deps.isolation ?? 'loopback';
  if (isolation === 'netns') requireNetns('`mutual up --isolation netns`');
  await checkBeforeStart(config, isolation, deps);
  const paths = meshPaths(deps.stateDir);
  await makeStateDirectories(paths);
  // Held from here until the mesh stops: a second up on this state directory is refused.
  const lock = await claimUpLock(paths.stateDir);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const mesh = await startMeshOnce(config, deps);
        return {
          ...mesh,
          async close() {
            await mesh.close();
            await lock.release();
          },
        };
      } catch (error) {
        // A port chosen for the mesh and taken by another process before ours bound it (two
        // meshes starting at once): everything was stopped, so start again on new ports.
        const isPortTaken =
          isMutualError(error, 'MUTUAL_MESH_START_FAILED') && error.detail.isPortTaken === true;
        if (!isPortTaken || attempt >= START_ATTEMPTS || deps.signal?.aborted) throw error;
        deps.onProgress({
          kind: 'port-taken',
          what: String(error.detail.what),
          log: String(error.detail.log),
        });
      }
    }
  } catch (error) {
    await lock.release();
    throw error;
  }
}

async function makeStateDirectories(paths: MeshPaths): Promise<void> {
  for (const dir of [paths.stateDir, paths.logsDir, paths.tokensDir]) {
    await makeDirectory(dir, 0o700).catch((error: Error) => {
      throw new MutualError(
        'MUTUAL_IO_WRITE_FAILED',
        `cannot create the mesh's state directory ${dir} (${error.message}); give --state-dir a directory, or a path where one can be made`,
        { cause: error },
      );
    });
  }
}

/** Starts with new ports when one was taken meanwhile, up to this many times in all. */
const START_ATTEMPTS = 3;

async function startMeshOnce(config: MeshConfig, deps: MeshDeps): Promise<Mesh> {
  const started = Date.now();
  const allocatePorts = deps.allocatePorts ?? allocateLoopbackPorts;
  const isolation = deps.isolation ?? 'loopback';
  const paths = meshPaths(deps.stateDir);

  // A mesh from this directory already running, or one that died without cleaning up.
  const previous = await tryReadRuntime(paths).catch(() => undefined);
  if (previous && isRunning(previous.supervisor) && previous.supervisor.pid !== process.pid) {
    throw new MutualError(
      'MUTUAL_MESH_ALREADY_RUNNING',
      `a mesh from ${previous.file} is already running from ${paths.stateDir} (pid ${previous.supervisor.pid}); stop it with \`mutual down --state-dir ${paths.stateDir}\` first`,
    );
  }
  const leftoverNetwork = await readNetworkRecord(paths.stateDir);
  if (previous || leftoverNetwork) {
    const stopped = previous ? await stopRuntime(previous) : 0;
    await removeRuntime(paths);
    const network = await removeLeftoverNetwork(paths.stateDir);
    deps.onProgress({ kind: 'stale-cleaned', stopped, ...(network ? { network } : {}) });
  }

  // The CA: created once, reused afterwards.
  const ca = await ensureMeshCa(paths.caDir, config.trustDomain, deps.clock);
  deps.onProgress({ kind: 'ca', ca, dir: paths.caDir });

  const processes: LoggedProcess[] = [];
  const controlPlane: { identity?: LoggedProcess; destination?: LoggedProcess } = {};
  const deadlineMs = started + deps.readyTimeoutMs;
  let runtime: MeshRuntime | undefined;
  let network: MeshNetwork | undefined;
  let isClosing = false;
  let tokenTimer: NodeJS.Timeout | undefined;
  let stopWatchingRevocations = () => {};
  let supervision: { stop(): void } | undefined;
  let stopRotatingLogs = () => {};
  const stopAll = async () => {
    isClosing = true;
    supervision?.stop();
    stopRotatingLogs();
    clearInterval(tokenTimer);
    stopWatchingRevocations();
    if (runtime) await stopRuntime(runtime);
    else await stopRuntime(partialRuntime(config, paths, controlPlane, processes));
    await removeRuntime(paths);
    if (network) {
      await removeMeshNetwork(network.record);
      await forgetNetworkRecord(paths.stateDir);
    }
  };
  try {
    // Every address, decided up front (netns: once the pods exist).
    let plan: MeshPlan;
    if (isolation === 'netns') {
      network = await createMeshNetwork({ stateDir: paths.stateDir, services: config.services });
      deps.onProgress({
        kind: 'network',
        id: network.record.id,
        subnet: network.subnet.cidr,
        pods: network.record.pods.length,
        elapsedMs: Date.now() - started,
      });
      const [api, admin, destinationApi, destinationAdmin] = await allocatePorts(
        4,
        network.subnet.hostAddress,
      );
      plan = planNetnsMesh({
        config,
        paths,
        pods: (service) => network!.pod(service),
        hostAddress: network.subnet.hostAddress,
        identityPorts: { api: api!, admin: admin! },
        destinationPorts: { api: destinationApi!, admin: destinationAdmin! },
        nodePath: deps.nodePath,
        mutualBin: deps.mutualBin,
        baseEnv: deps.baseEnv,
      });
    } else {
      plan = planMesh({
        config,
        paths,
        ports: await allocatePorts(portsNeeded(config)),
        nodePath: deps.nodePath,
        mutualBin: deps.mutualBin,
        baseEnv: deps.baseEnv,
      });
    }

    // One join token per service, readable by its owner only (netns: by its pod's proxy group).
    const writeTokens = await createTokenWriter(plan, paths, deps.clock);
    await writeTokens();
    deps.onProgress({
      kind: 'tokens',
      count: plan.services.length,
      dir: network ? network.record.runDir : paths.tokensDir,
      access: network ? "0640, each to its pod's proxy group" : '0600',
    });
    tokenTimer = setInterval(() => void writeTokens().catch(() => {}), TOKEN_REFRESH_MS);
    tokenTimer.unref();
    stopWatchingRevocations = remintOnRevocation(paths, plan.services.length, writeTokens, deps);
    // Every meshed address and its identity, for the destination service to answer from.
    const destinationTable = meshDestinationTable(
      plan.services.map((servicePlan) => ({
        service: {
          ...servicePlan.service,
          spiffeId: servicePlan.spiffeId,
          ports: servicePlan.ports,
          ...(servicePlan.pod ? { pod: servicePlan.pod } : {}),
        },
        opaquePorts: servicePlan.service.opaquePorts,
      })),
    );
    await writeDestinationTable(plan.destination.tableFile, destinationTable);

    // The identity service first: proxies certify against it as soon as they start.
    // Mutual's own processes (control plane, sidecars): from the state directory, with up's
    // environment; the same at every restart.
    const spawnMutual = (spawned: {
      argv: readonly string[];
      log: string;
      env?: Readonly<Record<string, string>>;
    }) =>
      spawnLogged({
        argv: spawned.argv,
        cwd: paths.stateDir,
        env: { ...nodeEnv(deps), ...spawned.env },
        log: spawned.log,
      });
    const identity = spawnMutual(plan.identity);
    processes.push(identity);
    controlPlane.identity = identity;
    const identityAdminUrl = plan.identity.adminUrl;
    await expectReady(
      'the identity service',
      identity,
      () =>
        waitForHttpReady(`${identityAdminUrl}/ready`, {
          deadlineMs,
          isAlive: () => identity.child.exitCode === null && !deps.signal?.aborted,
        }),
      deps,
    );
    const apiUrl = plan.identity.apiUrl;
    deps.onProgress({ kind: 'identity-ready', apiUrl, elapsedMs: Date.now() - started });

    // The destination service and every sidecar at once (both certify against the identity
    // service), then the runtime file, so `mutual down` finds them even mid-start.
    const destination = spawnMutual(plan.destination);
    processes.push(destination);
    controlPlane.destination = destination;
    const proxies = plan.services.map((servicePlan) => {
      const proxy = spawnMutual(servicePlan.proxy);
      processes.push(proxy);
      return proxy;
    });
    const notStarted = { pid: -1, startTicks: 0, log: '', argv: [] };
    runtime = {
      version: 1,
      file: config.file,
      trustDomain: config.trustDomain,
      ...(config.policyDir === undefined ? {} : { policyDir: config.policyDir }),
      stateDir: paths.stateDir,
      startedAt: new Date(deps.clock.now()).toISOString(),
      liveness: config.liveness,
      supervisor: { pid: process.pid, startTicks: processStartTicks(process.pid) ?? 0 },
      isolation,
      ...(network
        ? {
            network: {
              id: network.record.id,
              subnet: network.subnet.cidr,
              hostAddress: network.subnet.hostAddress,
              bridgeNetns: network.record.bridgeNetns,
              hostLink: network.record.hostLink,
              record: join(paths.stateDir, 'network.json'),
            },
          }
        : {}),
      identity: { ...recorded(identity), apiUrl, adminUrl: identityAdminUrl },
      destination: {
        ...recorded(destination),
        apiUrl: plan.destination.apiUrl,
        adminUrl: plan.destination.adminUrl,
        serverId: plan.destination.serverId,
        tableFile: plan.destination.tableFile,
      },
      services: plan.services.map((servicePlan, index) => ({
        name: servicePlan.service.name,
        namespace: servicePlan.service.namespace,
        serviceAccount: servicePlan.service.serviceAccount,
        spiffeId: servicePlan.spiffeId,
        labels: servicePlan.service.labels,
        ports: servicePlan.ports,
        upstreams: servicePlan.upstreams,
        adminUrl: servicePlan.adminUrl,
        ...(servicePlan.pod
          ? { pod: { netns: servicePlan.pod.netns, address: servicePlan.pod.address } }
          : {}),
        app: { ...notStarted, log: servicePlan.app.log, argv: servicePlan.app.argv },
        proxy: recorded(proxies[index]!),
      })),
    };
    await writeRuntime(paths, runtime);

    // The destination service and each sidecar ready (/ready answers 200: it has its certificate
    // and listens), so the apps' first calls find both.
    const destinationReady = (async () => {
      await expectReady(
        'the destination service',
        destination,
        () =>
          waitForHttpReady(`${plan.destination.adminUrl}/ready`, {
            deadlineMs,
            isAlive: () => destination.child.exitCode === null && !deps.signal?.aborted,
          }),
        deps,
      );
      deps.onProgress({
        kind: 'destination-ready',
        apiUrl: plan.destination.apiUrl,
        entries: destinationTable.length,
        elapsedMs: Date.now() - started,
      });
    })();
    await settleAll(
      [
        destinationReady,
        ...runtime.services.map(async (service, index) => {
          const proxy = proxies[index]!;
          await expectReady(
            `the sidecar of ${service.name}`,
            proxy,
            () =>
              waitForHttpReady(`${service.adminUrl}/ready`, {
                deadlineMs,
                isAlive: () => proxy.child.exitCode === null && !deps.signal?.aborted,
              }),
            deps,
          );
        }),
      ],
      deps.signal,
    );

    // Then the apps, so their first calls find every sidecar ready (as linkerd-await does), each
    // once the apps it calls listen: started beside them, a caller's first calls (the demo's
    // vote-bot's) were answered 502 by the sidecar of an app still starting. Services that call
    // each other, directly or not, do not wait on one another.
    const waitsFor = appsToAwait(plan.services);
    const apps: LoggedProcess[] = [];
    // One write after another: apps start at different times, and an older write must not land last.
    let appsRecorded = Promise.resolve();
    const recordApps = () => {
      runtime = {
        ...runtime!,
        services: runtime!.services.map((service, index) =>
          apps[index] ? { ...service, app: recorded(apps[index]) } : service,
        ),
      };
      const snapshot = runtime;
      appsRecorded = appsRecorded.then(() => writeRuntime(paths, snapshot));
      return appsRecorded;
    };
    const listening = new Map<number, Promise<void>>();
    const appListening = (index: number): Promise<void> => {
      let started = listening.get(index);
      if (!started) {
        started = startApp(index);
        listening.set(index, started);
      }
      return started;
    };
    const startApp = async (index: number): Promise<void> => {
      // An app whose upstream failed to start is not started: up stops everything anyway.
      await Promise.all(waitsFor[index]!.map(appListening));
      throwIfAborted(deps.signal);
      const app = spawnLogged(plan.services[index]!.app);
      processes.push(app);
      apps[index] = app;
      await recordApps();
      const service = runtime!.services[index]!;
      const isAlive = () => app.child.exitCode === null && !deps.signal?.aborted;
      const appPorts = service.ports.map((port) => port.appPort);
      for (const [at, port] of service.ports.entries()) {
        const pod = service.pod;
        // $PORT is the first port's; each port has its $PORT_<declared> (appEnvironment).
        const variable = at === 0 ? 'PORT' : `PORT_${port.port}`;
        await expectReady(
          `the app ${service.name} (port ${port.port}, told to listen on $${variable}=${port.appPort}${pod ? ` in ${pod.netns}` : ''})`,
          app,
          () =>
            pod
              ? waitForPodListen(app.pid, pod.netns, port.appPort, {
                  deadlineMs,
                  isAlive,
                  // A skipped inbound port is reached by callers at the pod's address, not by its sidecar.
                  reachedFrom: port.inboundPort === undefined ? pod.address : undefined,
                })
              : waitForAppPort(app.pid, service.name, { ...port, variable }, appPorts, {
                  deadlineMs,
                  isAlive,
                  onProgress: deps.onProgress,
                }),
          deps,
          pod ? undefined : appPorts,
        );
      }
      // Loopback: an app on 0.0.0.0 (or ::) is reachable from other machines past its sidecar.
      if (!service.pod) {
        const exposed = (await listeningSocketsOf(app.pid)).filter(
          (socket) => appPorts.includes(socket.port) && !isLoopbackIp(socket.address),
        );
        if (exposed.length > 0)
          deps.onProgress({ kind: 'app-exposed', service: service.name, sockets: exposed.map(formatSocket) });
      }
      deps.onProgress({ kind: 'service-ready', service, elapsedMs: Date.now() - started });
    };
    await settleAll(
      plan.services.map((_, index) => appListening(index)),
      deps.signal,
    );

    // From here on a process that exits is started again (restarts.ts), and runtime.json follows,
    // so `down`, `check`, `logs` and the dashboard find the new one.
    let recording = Promise.resolve();
    let isUnrecorded = false;
    const record = (update: (current: MeshRuntime) => MeshRuntime) => {
      runtime = update(runtime!);
      const snapshot = runtime;
      // One write after another: an older snapshot must never land after a newer one. A failed
      // write is said once (the mesh runs on), and so is the next one that succeeds.
      recording = recording
        .then(() => writeRuntime(paths, snapshot))
        .then(
          () => {
            if (!isUnrecorded) return;
            isUnrecorded = false;
            deps.onProgress({ kind: 'runtime-recorded', file: paths.runtimeFile });
          },
          (error: unknown) => {
            if (isUnrecorded) return;
            isUnrecorded = true;
            deps.onProgress({
              kind: 'runtime-unrecorded',
              file: paths.runtimeFile,
              message: (error as Error).message,
            });
          },
        );
    };
    const supervised: Array<{ process: LoggedProcess; restartable: Restartable }> = [
      {
        process: identity,
        restartable: {
          what: 'the identity service',
          policy: 'always',
          livenessUrl: `${plan.identity.adminUrl}/live`,
          spawn: () => spawnMutual(plan.identity),
          onStarted: (again, restart) =>
            record((current) => ({
              ...current,
              identity: { ...current.identity, ...recorded(again), ...restart },
            })),
        },
      },
      {
        process: destination,
        restartable: {
          what: 'the destination service',
          policy: 'always',
          livenessUrl: `${plan.destination.adminUrl}/live`,
          spawn: () => spawnMutual(plan.destination),
          onStarted: (again, restart) =>
            record((current) => ({
              ...current,
              destination: { ...current.destination!, ...recorded(again), ...restart },
            })),
        },
      },
      ...plan.services.flatMap((servicePlan, index) => {
        const name = servicePlan.service.name;
        const replace = (part: 'app' | 'proxy', again: LoggedProcess, restart: RestartRecord) =>
          record((current) => ({
            ...current,
            services: current.services.map((service, at) =>
              at === index ? { ...service, [part]: { ...recorded(again), ...restart } } : service,
            ),
          }));
        return [
          {
            process: proxies[index]!,
            restartable: {
              what: `the sidecar of ${name}`,
              policy: 'always' as const,
              livenessUrl: `${servicePlan.adminUrl}/live`,
              spawn: () => spawnMutual(servicePlan.proxy),
              onStarted: (again: LoggedProcess, restart: RestartRecord) => replace('proxy', again, restart),
            },
          },
          {
            process: apps[index]!,
            restartable: {
              what: `the app ${name}`,
              policy: servicePlan.service.restart,
              livenessProbe: appLiveness(servicePlan),
              spawn: () => spawnLogged(servicePlan.app),
              onStarted: (again: LoggedProcess, restart: RestartRecord) => replace('app', again, restart),
              onStayedDown: (exit: LastExit) =>
                record((current) => ({
                  ...current,
                  services: current.services.map((service, at) =>
                    at === index ? { ...service, app: { ...service.app, exit } } : service,
                  ),
                })),
            },
          },
        ];
      }),
    ];
    // Apps are probed only when mesh.yaml gives them a livenessProbe (app-liveness.ts).
    supervision = superviseRestarts(supervised, {
      isStopping: () => isClosing,
      onEvent: deps.onProgress,
      liveness: config.liveness,
    });
    stopRotatingLogs = rotateLogsEvery(paths.logsDir);
  } catch (error) {
    await stopAll();
    throw error;
  }
  const finalRuntime = runtime;
  return { runtime: finalRuntime, paths, close: stopAll };
}

/**
 * A revocation (`mutual identity token revoke` on this state directory) may name the tokens the
 * mesh handed out: they are minted again at once, or sidecars would fail to renew until the next
 * refresh, hours away, and their certificates could expire first. Minted 1.1 s after the change is
 * seen, past the whole second a `--ns --sa` revocation cuts at, so the new ones are not revoked too.
 */
function remintOnRevocation(
  paths: MeshPaths,
  count: number,
  writeTokens: () => Promise<void>,
  deps: MeshDeps,
): () => void {
  const file = join(paths.stateDir, 'identity', REVOKED_TOKENS_FILE);
  let pending: NodeJS.Timeout | undefined;
  const onChange = (
    current: { mtimeMs: number; size: number },
    previous: { mtimeMs: number; size: number },
  ) => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size) return;
    clearTimeout(pending);
    pending = setTimeout(() => {
      void writeTokens()
        .then(() => deps.onProgress({ kind: 'tokens-reminted', count, file }))
        .catch(() => {});
    }, 1100);
  };
  watchFile(file, { interval: 1000, persistent: false }, onChange);
  return () => {
    clearTimeout(pending);
    unwatchFile(file, onChange);
  };
}

function recorded(process: LoggedProcess) {
  return { pid: process.pid, startTicks: process.startTicks, log: process.log, argv: process.argv };
}

function nodeEnv(deps: MeshDeps): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(deps.baseEnv)) if (value !== undefined) env[key] = value;
  env.NO_COLOR = '1';
  return env;
}

/** The processes started so far, as a runtime `stopRuntime` can stop. */
function partialRuntime(
  config: MeshConfig,
  paths: MeshPaths,
  controlPlane: { identity?: LoggedProcess; destination?: LoggedProcess },
  processes: readonly LoggedProcess[],
): MeshRuntime {
  const { identity, destination } = controlPlane;
  const rest = processes.filter((child) => child !== identity && child !== destination);
  const none = { pid: -1, startTicks: 0, log: '', argv: [] };
  return {
    version: 1,
    file: config.file,
    trustDomain: config.trustDomain,
    stateDir: paths.stateDir,
    startedAt: '',
    supervisor: { pid: process.pid, startTicks: 0 },
    identity: { ...(identity ? recorded(identity) : none), apiUrl: '', adminUrl: '' },
    ...(destination
      ? { destination: { ...recorded(destination), apiUrl: '', adminUrl: '', serverId: '', tableFile: '' } }
      : {}),
    services: rest.map((child, index) => ({
      name: `process-${index}`,
      namespace: '',
      serviceAccount: '',
      spiffeId: '',
      labels: {},
      ports: [],
      upstreams: [],
      adminUrl: '',
      app: recorded(child),
      proxy: none,
    })),
  };
}

/** Waits for every promise, then throws the first failure (so no wait is left running). */
async function settleAll(
  promises: ReadonlyArray<Promise<void>>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const results = await Promise.allSettled(promises);
  throwIfAborted(signal);
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new MutualError(
      'MUTUAL_MESH_START_FAILED',
      `interrupted (${String(signal.reason)}) while starting; everything started so far was stopped`,
      { detail: { isInterrupted: true, signal: String(signal.reason) } },
    );
  }
}

/**
 * What mesh.yaml's schema cannot know, checked before anything starts: the policy directory exists
 * and its policies are valid (else every sidecar would exit on them), each app's program can be
 * run, (loopback) every service has a port or an upstream, or its sidecar would have nothing to do,
 * and (netns) no app is given a port its sidecar holds in the pod, nor a name /etc/hosts gives away.
 */
async function checkBeforeStart(
  config: MeshConfig,
  isolation: 'loopback' | 'netns',
  deps: Pick<MeshDeps, 'nodePath' | 'baseEnv' | 'mutualBin'>,
): Promise<void> {
  const problems: string[] = [];
  let isPolicyDir = false;
  if (config.policyDir !== undefined) {
    const found = await stat(config.policyDir).catch(() => undefined);
    isPolicyDir = found?.isDirectory() === true;
    if (!isPolicyDir)
      problems.push(
        `policyDir: ${config.policyDir} ${found ? 'is not a directory' : 'does not exist'}; give a directory of PeerAuthentication / AuthorizationPolicy YAML (relative to mesh.yaml), or leave policyDir out`,
      );
  }
  // The app's PATH, as appEnvironment makes it: its own, or the Node that runs mutual first.
  const appPath = (service: MeshConfig['services'][number]) =>
    service.env.PATH ?? defaultAppPath(deps.nodePath, deps.baseEnv.PATH);
  for (const service of config.services) {
    const path = appPath(service);
    const problem = await programProblem(service.command[0]!, service.cwd, path);
    // A string command runs with /bin/sh -c: what matters is the program the script runs.
    const scriptProgram = isShellCommand(service.command)
      ? shellScriptProgram(service.command[2]!)
      : undefined;
    const scriptProblem =
      problem === undefined && scriptProgram !== undefined
        ? await programProblem(scriptProgram, service.cwd, path)
        : undefined;
    if (problem) problems.push(`services.${service.name}.command: ${problem}`);
    if (scriptProblem)
      problems.push(`services.${service.name}.command (run with /bin/sh -c): ${scriptProblem}`);
  }
  if (isolation === 'netns') {
    const runtimeProblem = await podRuntimeAccessProblem(deps.mutualBin);
    if (runtimeProblem) problems.push(runtimeProblem);
    for (const service of config.services) {
      const nameProblem = podNameProblem(service.name);
      if (nameProblem) problems.push(`services.${service.name}.name: ${nameProblem}`);
      const accessProblem = await podAppAccessProblem(service.cwd, service.command[0]!);
      if (accessProblem) problems.push(`services.${service.name}.cwd: ${accessProblem}`);
      // A list command is exec'd as the app's uid; `sh -c` skips what that uid cannot run on PATH.
      const programProblem =
        accessProblem === undefined && !isShellCommand(service.command)
          ? await podProgramProblem(service.command[0]!, service.cwd, appPath(service))
          : undefined;
      if (programProblem) problems.push(`services.${service.name}.command: ${programProblem}`);
      for (const { port } of service.ports) {
        const problem = podPortProblem(port);
        if (problem) problems.push(`services.${service.name}.ports: ${problem}`);
      }
    }
  }
  if (isolation === 'loopback') {
    for (const service of config.services) {
      if (service.ports.length === 0 && service.upstreams.length === 0)
        problems.push(
          `services.${service.name}: declares neither ports nor upstreams, so its sidecar has nothing to carry; give it ports: [PORT] (it serves) or upstreams: [SERVICE] (it calls)`,
        );
    }
  }
  if (problems.length > 0)
    throw new MutualError(
      'MUTUAL_MESH_CONFIG_INVALID',
      `${config.file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join('\n  ')}`}`,
    );
  // The sidecars read the same files and would each exit on an invalid one.
  if (config.policyDir !== undefined && isPolicyDir) {
    const loaded = await loadPolicyFiles([config.policyDir]);
    const errors = loaded.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
    if (errors.length > 0) throw diagnosticsError(errors);
  }
}

/**
 * Why `program` cannot be run from `cwd` with `PATH`, or undefined: a path (it has a '/') must be
 * an executable file, relative to the service's cwd; a bare name must be one on PATH.
 */
async function programProblem(program: string, cwd: string, path: string): Promise<string | undefined> {
  const isExecutableFile = async (file: string) =>
    (await stat(file).catch(() => undefined))?.isFile() === true &&
    (await access(file, constants.X_OK).then(
      () => true,
      () => false,
    ));
  if (program.includes('/')) {
    const file = resolve(cwd, program);
    const found = await stat(file).catch(() => undefined);
    if (!found)
      return `${program} does not exist (looked for ${file}; a relative path is from the service's cwd, by default mesh.yaml's directory)`;
    if (!found.isFile()) return `${program} is not a file (${file})`;
    if (!(await isExecutableFile(file)))
      return `${program} is not executable; \`chmod +x ${program}\`, or run it with its interpreter, e.g. command: [python3, ${program}]`;
    return undefined;
  }
  for (const dir of path.split(delimiter).filter(Boolean))
    if (await isExecutableFile(resolve(cwd, dir, program))) return undefined;
  // `command: serve.sh` for the script beside mesh.yaml: a bare name is looked up on PATH only.
  if (
    await stat(resolve(cwd, program)).then(
      (found) => found.isFile(),
      () => false,
    )
  )
    return `no program ${program} on PATH; to run the one in ${cwd}, write ./${program}`;
  return `no program ${program} on PATH; is it installed? (give its full path, or set PATH in the service's env:)`;
}

/**
 * waitForTcp on an app's $PORT, telling (once, after a second) where the app listens instead when
 * it listens on none of the ports it was given, and saying so again if it is never ready.
 */
async function waitForAppPort(
  pgid: number,
  service: string,
  port: { port: number; appPort: number; variable: string },
  appPorts: readonly number[],
  options: { deadlineMs: number; isAlive: () => boolean; onProgress: (event: MeshProgress) => void },
): Promise<WaitOutcome> {
  let elsewhere: string[] = [];
  let isDone = false;
  // Not awaited: a ready app must not wait for the watcher's next round.
  void (async () => {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    while (!isDone) {
      const sockets = await listeningSocketsOf(pgid);
      if (!isDone && sockets.length > 0 && !sockets.some((socket) => appPorts.includes(socket.port))) {
        elsewhere = sockets.map(formatSocket);
        options.onProgress({ kind: 'app-elsewhere', service, ...port, listening: elsewhere });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })().catch(() => {});
  const outcome = await waitForTcp(port.appPort, options);
  isDone = true;
  if (outcome.ok || elsewhere.length === 0) return outcome;
  return {
    ...outcome,
    last: `${outcome.last}; the app listens on ${elsewhere.join(', ')} instead: make it listen on $${port.variable} (${port.appPort}); mesh.yaml's port ${port.port} is the port callers name, not where the app listens`,
  };
}

async function expectReady(
  what: string,
  process: LoggedProcess,
  wait: () => Promise<WaitOutcome>,
  deps: Pick<MeshDeps, 'signal' | 'readyTimeoutMs'>,
  /** An app's $PORTs: an "address already in use" while they are free was another port, no race. */
  appPorts?: readonly number[],
): Promise<void> {
  const outcome = await wait();
  if (outcome.ok) return;
  throwIfAborted(deps.signal);
  // Give a dying process a moment to flush its last words to the log.
  const exit =
    outcome.reason === 'exited'
      ? await Promise.race([
          process.exited,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
        ])
      : undefined;
  const tail = await tailFile(process.log, { fromByte: process.logStartByte });
  let isPortTaken = /EADDRINUSE|address already in use/i.test(tail);
  // The app could not bind a port, but the ones the mesh gave it are free: it tried another (one
  // it hard-codes, its default), so starting again on new ports would change nothing.
  let portAdvice = '';
  if (
    isPortTaken &&
    appPorts &&
    (await Promise.all(appPorts.map((port) => isPortFree(port)))).every(Boolean)
  ) {
    isPortTaken = false;
    portAdvice = `: it could not bind a port (address already in use), yet $PORT=${appPorts.join(', ')} it was given is free, so it listens on a port of its own choosing; make it listen on $PORT`;
  }
  // Success before listening: a server that forks into the background and leaves (nginx's default).
  if (outcome.reason === 'exited' && process.child.exitCode === 0 && !portAdvice)
    portAdvice = `: it ended with success before it listened, as a server that puts itself in the background does (nginx without \`daemon off;\`, \`redis-server --daemonize yes\`); keep it in the foreground, e.g. command: nginx -g 'daemon off;'`;
  const status = exit?.startError
    ? `could not be started (${startProblem(exit.startError, process.argv[0]!)})`
    : outcome.reason === 'exited'
      ? `exited (${process.child.exitCode === null ? `signal ${process.child.signalCode}` : `code ${process.child.exitCode}`})${portAdvice}`
      : outcome.reason === 'unreachable'
        ? `listens where it cannot be reached: ${outcome.last}`
        : `was not ready within --timeout ${formatDuration(deps.readyTimeoutMs)}, for every process together (last check: ${outcome.last})`;
  throw new MutualError(
    'MUTUAL_MESH_START_FAILED',
    `${what} ${status}. Command: ${process.argv.join(' ')}\n  log ${process.log}${tail ? `, last lines:\n${indent(tail)}` : ' is empty'}`,
    { detail: { what, log: process.log, isPortTaken } },
  );
}

/** Why spawn failed, with what to do: no such program, or a file that is not executable. */
function startProblem(startError: string, program: string): string {
  if (/EACCES/.test(startError))
    return `${startError}: ${program} is not executable; \`chmod +x ${program}\`, or run it with its interpreter, e.g. command: [python3, ${program}]`;
  return `${startError}: is ${program} installed, and on PATH or a path from the service's cwd?`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    | ${line}`)
    .join('\n');
}

/**
 * For each service, the services whose apps must listen before its app starts: the ones it calls,
 * except those that call it back, directly or through others (in a cycle none could start first).
 */
function appsToAwait(services: readonly ServicePlan[]): number[][] {
  const indexByName = new Map(services.map((plan, index) => [plan.service.name, index]));
  const calls = services.map((plan) => [
    ...new Set(
      plan.upstreams
        .map((upstream) => indexByName.get(upstream.service))
        .filter((index): index is number => index !== undefined),
    ),
  ]);
  const reaches = (from: number, to: number): boolean => {
    const seen = new Set<number>();
    const stack = [from];
    while (stack.length > 0) {
      const at = stack.pop()!;
      if (at === to) return true;
      if (seen.has(at)) continue;
      seen.add(at);
      stack.push(...calls[at]!);
    }
    return false;
  };
  return calls.map((upstreams, index) => upstreams.filter((upstream) => !reaches(upstream, index)));
}
