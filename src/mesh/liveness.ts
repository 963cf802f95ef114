// Liveness of the mesh's own processes, as the kubelet's livenessProbe: a process that is there but
// does not answer (stopped, stuck in a loop, deadlocked) is killed, and restarts.ts starts it
// again. Each is asked GET <admin>/live every periodSeconds; an answer 200-399 within
// timeoutSeconds is a success. failureThreshold failures in a row kill it. A process just started
// has the same window (failureThreshold × periodSeconds) to answer a first time, as a startupProbe
// with the liveness probe's settings: a slow start is not a wedge.
import { request } from 'node:http';

export interface LivenessSettings {
  readonly periodSeconds: number;
  readonly failureThreshold: number;
  readonly timeoutSeconds: number;
}

/** The kubelet's defaults. */
export const LIVENESS_DEFAULTS: LivenessSettings = {
  periodSeconds: 10,
  failureThreshold: 3,
  timeoutSeconds: 1,
};

/** How long a process may go without answering before it is killed: `30 s` by default. */
export function livenessWindowSeconds(settings: LivenessSettings): number {
  return settings.periodSeconds * settings.failureThreshold;
}

/** GET `url`: undefined when it answered 200-399 within `timeoutMs`, else what went wrong. */
export function probeHttp(url: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let isDone = false;
    const done = (problem: string | undefined) => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      outgoing.destroy();
      resolve(problem);
    };
    const outgoing = request(url, { method: 'GET', agent: false }, (response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      done(status >= 200 && status < 400 ? undefined : `answered ${status}`);
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
    const timer = setTimeout(() => done(`no answer within ${timeoutMs / 1000} s`), timeoutMs);
    outgoing.end();
  });
}

/**
 * Probes `url` every period until `stop()` or `isWatching()` turns false (the process exited, the
 * mesh is stopping). Calls `onFailed` once, with why (`did not answer /live 3 times in 30 s (no
 * answer within 1 s)`), when the process should be killed; it probes no more after that.
 */
export function watchLiveness(
  url: string,
  settings: LivenessSettings,
  options: {
    readonly isWatching: () => boolean;
    readonly onFailed: (message: string) => void;
    /** It has answered already (a process up waited for), so it gets no startup window. */
    readonly hasAnswered?: boolean;
  },
): { stop(): void } {
  const periodMs = settings.periodSeconds * 1000;
  const startedAtMs = Date.now();
  const path = new URL(url).pathname;
  const window = `${livenessWindowSeconds(settings)} s`;
  let hasAnswered = options.hasAnswered === true;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let isStopped = false;
  const tick = async () => {
    if (isStopped || !options.isWatching()) return;
    const probedAtMs = Date.now();
    const problem = await probeHttp(url, settings.timeoutSeconds * 1000);
    if (isStopped || !options.isWatching()) return;
    if (problem === undefined) {
      hasAnswered = true;
      failures = 0;
    } else if (hasAnswered) {
      failures += 1;
      if (failures >= settings.failureThreshold) {
        options.onFailed(`did not answer ${path} ${failures} times in ${window} (${problem})`);
        return;
      }
    } else if (Date.now() - startedAtMs >= periodMs * settings.failureThreshold) {
      options.onFailed(`did not answer ${path} in the ${window} after it started (${problem})`);
      return;
    }
    // Every period from the start of one probe to the next, as the kubelet's.
    timer = setTimeout(() => void tick(), Math.max(0, periodMs - (Date.now() - probedAtMs)));
    timer.unref();
  };
  timer = setTimeout(() => void tick(), periodMs);
  timer.unref();
  return {
    stop() {
      isStopped = true;
      clearTimeout(timer);
    },
  };
}
