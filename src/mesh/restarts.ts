// A process of a running mesh that exits is started again, as the kubelet restarts a pod's
// containers: the identity and destination services and every sidecar always (without them the
// mesh is broken: a sidecar that crashed leaves its app unreachable and its calls unproxied), an app
// as its service's `restart` says (on-failure by default: after a crash or a kill, not after a
// clean exit). Restarts back off from 1 s, doubling to 30 s, and the delay starts over once a
// process has stayed up for a minute: the kubelet's CrashLoopBackOff, with shorter steps for a mesh
// on one machine. Whatever an exited process leaves running in its process group is killed before
// it starts again, as a container's processes end with it. A process with a liveness URL that
// stops answering it, or an app that fails its livenessProbe, is killed first (liveness.ts), and
// its restart records why.
import { appendFile } from 'node:fs/promises';
import { type LivenessSettings, type LivenessTarget, watchLiveness } from './liveness.ts';
import type { LoggedProcess } from './processes.ts';
import type { LastExit } from './runtime.ts';

export type RestartPolicy = 'always' | 'on-failure' | 'never';

export const RESTART_BACKOFF = { firstMs: 1000, maxMs: 30_000, resetAfterMs: 60_000 } as const;

export interface Restartable {
  /** How reports name it: 'the sidecar of web'. */
  readonly what: string;
  readonly policy: RestartPolicy;
  /** Starts it again, with the arguments, environment and log of the first start. */
  readonly spawn: () => LoggedProcess;
  /** Records a new process (runtime.json), synchronously: a `down` right after must find it. */
  readonly onStarted: (process: LoggedProcess, restart: RestartRecord) => void;
  /** Records how it ended when its policy says not to start it again (runtime.json, for check). */
  readonly onStayedDown?: (exit: LastExit) => void;
  /** Its admin /live, probed while it runs (liveness.ts); none for a process without one. */
  readonly livenessUrl?: string;
  /** An app's livenessProbe (mesh.yaml), probed as the kubelet does: every failure counts. */
  readonly livenessProbe?: {
    readonly target: LivenessTarget;
    readonly settings: LivenessSettings;
    readonly initialDelaySeconds: number;
  };
}

/** What runtime.json keeps of a restart: how many so far, and how the process before ended. */
export interface RestartRecord {
  readonly restarts: number;
  readonly lastExit: LastExit;
}

export type RestartEvent =
  | {
      kind: 'exited';
      what: string;
      code: number | null;
      signal: string | null;
      log: string;
      /** When it is started again; undefined when its policy says not to. */
      restartInMs?: number;
      /** Why `up` killed it, when it did: it failed its liveness probe. */
      liveness?: string;
    }
  | { kind: 'restarted'; what: string; pid: number; restarts: number };

/** The delay before restart number `restarts` (1 = the first) of a process that keeps exiting. */
export function restartDelayMs(restarts: number): number {
  return Math.min(RESTART_BACKOFF.maxMs, RESTART_BACKOFF.firstMs * 2 ** Math.max(0, restarts - 1));
}

/** Whether a process that exited so should be started again under `policy`. */
export function shouldRestart(
  policy: RestartPolicy,
  exit: { code: number | null; signal: string | null },
): boolean {
  if (policy === 'always') return true;
  if (policy === 'never') return false;
  return exit.signal !== null || exit.code !== 0;
}

/**
 * Watches each process and starts it again when it exits, until `stop()`. `isStopping` is asked
 * right before every restart, so a mesh being stopped never starts a process again. With
 * `liveness`, each process with a `livenessUrl` is probed from its start until it exits (never
 * while it waits to be started again, nor once the mesh is stopping) and killed when it fails.
 */
export function superviseRestarts(
  supervised: ReadonlyArray<{ readonly process: LoggedProcess; readonly restartable: Restartable }>,
  options: {
    readonly isStopping: () => boolean;
    readonly onEvent: (event: RestartEvent) => void;
    readonly liveness?: LivenessSettings;
  },
): { stop(): void } {
  const timers = new Set<NodeJS.Timeout>();
  const probes = new Set<{ stop(): void }>();
  let isStopped = false;
  const watch = (process: LoggedProcess, restartable: Restartable, restarts: number) => {
    const startedAtMs = Date.now();
    let killedFor: string | undefined;
    const isExited = () => process.child.exitCode !== null || process.child.signalCode !== null;
    const isWatching = () => !isStopped && !options.isStopping() && !isExited();
    const onFailed = (message: string) => {
      killedFor = message;
      void killForLiveness(process, message);
    };
    const appProbe = restartable.livenessProbe;
    const probe = appProbe
      ? watchLiveness(appProbe.target, appProbe.settings, {
          isWatching,
          onFailed,
          // Kubernetes' livenessProbe has no startup window: initialDelaySeconds is the app's.
          hasAnswered: true,
          initialDelaySeconds: appProbe.initialDelaySeconds,
        })
      : options.liveness && restartable.livenessUrl
        ? watchLiveness(restartable.livenessUrl, options.liveness, {
            isWatching,
            // The first processes were ready before supervision began; a restart gets a startup window.
            hasAnswered: restarts === 0,
            onFailed,
          })
        : undefined;
    if (probe) probes.add(probe);
    void process.exited.then((exit) => {
      if (probe) {
        probe.stop();
        probes.delete(probe);
      }
      if (isStopped || options.isStopping()) return;
      killLeftovers(process.pid);
      const exitedAt = new Date().toISOString();
      const ranLong = Date.now() - startedAtMs >= RESTART_BACKOFF.resetAfterMs;
      const next = ranLong ? 1 : restarts + 1;
      const restart = shouldRestart(restartable.policy, exit);
      const delayMs = restartDelayMs(next);
      options.onEvent({
        kind: 'exited',
        what: restartable.what,
        code: exit.code,
        signal: exit.signal,
        log: process.log,
        ...(restart ? { restartInMs: delayMs } : {}),
        ...(killedFor === undefined ? {} : { liveness: killedFor }),
      });
      if (!restart) {
        restartable.onStayedDown?.({
          code: exit.code,
          signal: exit.signal,
          at: exitedAt,
          ...(killedFor === undefined ? {} : { reason: 'liveness' as const, message: killedFor }),
        });
        return;
      }
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (isStopped || options.isStopping()) return;
        const again = restartable.spawn();
        restartable.onStarted(again, {
          restarts: next,
          lastExit: {
            code: exit.code,
            signal: exit.signal,
            at: exitedAt,
            ...(killedFor === undefined ? {} : { reason: 'liveness' as const, message: killedFor }),
          },
        });
        options.onEvent({ kind: 'restarted', what: restartable.what, pid: again.pid, restarts: next });
        watch(again, restartable, next);
      }, delayMs);
      timers.add(timer);
    });
  };
  for (const { process, restartable } of supervised) watch(process, restartable, 0);
  return {
    stop() {
      isStopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const probe of probes) probe.stop();
      probes.clear();
    },
  };
}

/**
 * SIGKILLs what is left of an exited process's group: the children of an app's `sh -c` (its
 * `python3 -m http.server`) outlived a `kill -9` of the shell, kept its port, and every restart
 * then failed to bind it (code 1, backing off to 30 s, for as long as the mesh ran) while the
 * orphan answered in its place. A container's processes end with it, and so do these. The leader
 * is reaped, and Linux hands out no pid that is still a live process group's id, so the group is
 * still this process's; one with no member left is ESRCH.
 */
function killLeftovers(pgid: number): void {
  if (!(pgid > 0)) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // Nothing left of it.
  }
}

/**
 * Says why in the process's own log (what `mutual logs` shows; one JSON line, as Mutual's daemons
 * write), then SIGKILLs its group: a stopped or wedged process would not act on SIGTERM.
 */
async function killForLiveness(wedged: LoggedProcess, message: string): Promise<void> {
  const line = { time: new Date().toISOString(), level: 'error', msg: `killed by mutual up: ${message}` };
  await appendFile(wedged.log, `${JSON.stringify(line)}\n`).catch(() => {});
  // Not reaped yet, so the pid (and its group) is still this process's.
  if (wedged.child.exitCode !== null || wedged.child.signalCode !== null) return;
  try {
    process.kill(-wedged.pid, 'SIGKILL');
  } catch {
    // Gone meanwhile.
  }
}
