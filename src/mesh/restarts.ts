// A process of a running mesh that exits is started again, as the kubelet restarts a pod's
// containers: the identity and destination services and every sidecar always (without them the
// mesh is broken: a sidecar that crashed leaves its app unreachable and its calls unproxied), an app
// as its service's `restart` says (on-failure by default: after a crash or a kill, not after a
// clean exit). Restarts back off from 1 s, doubling to 30 s, and the delay starts over once a
// process has stayed up for a minute: the kubelet's CrashLoopBackOff, with shorter steps for a mesh
// on one machine.
import type { LoggedProcess } from './processes.ts';

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
}

/** What runtime.json keeps of a restart: how many so far, and how the process before ended. */
export interface RestartRecord {
  readonly restarts: number;
  readonly lastExit: { readonly code: number | null; readonly signal: string | null; readonly at: string };
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
 * right before every restart, so a mesh being stopped never starts a process again.
 */
export function superviseRestarts(
  supervised: ReadonlyArray<{ readonly process: LoggedProcess; readonly restartable: Restartable }>,
  options: { readonly isStopping: () => boolean; readonly onEvent: (event: RestartEvent) => void },
): { stop(): void } {
  const timers = new Set<NodeJS.Timeout>();
  let isStopped = false;
  const watch = (process: LoggedProcess, restartable: Restartable, restarts: number) => {
    const startedAtMs = Date.now();
    void process.exited.then((exit) => {
      if (isStopped || options.isStopping()) return;
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
      });
      if (!restart) return;
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (isStopped || options.isStopping()) return;
        const again = restartable.spawn();
        restartable.onStarted(again, {
          restarts: next,
          lastExit: { code: exit.code, signal: exit.signal, at: exitedAt },
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
    },
  };
}
