// Liveness of the mesh's own processes, as the kubelet's livenessProbe: a process that is there but
// does not answer (stopped, stuck in a loop, deadlocked) is killed, and restarts.ts starts it
// again. Each is asked GET <admin>/live every periodSeconds; an answer 200-399 within
// timeoutSeconds is a success. failureThreshold failures in a row kill it. A process just started
// has the same window (failureThreshold × periodSeconds) to answer a first time, as a startupProbe
// with the liveness probe's settings: a slow start is not a wedge. An app's livenessProbe
// (mesh.yaml) is probed as the kubelet does: from initialDelaySeconds on, every failure counts.
import { request } from 'node:http';
import { connect } from 'node:net';

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

/**
 * What one probe found: undefined (alive), what failed, or `inconclusive` when the probe could not
 * be made at all (an app probed through its sidecar while the sidecar is down): counts as neither.
 */
export type ProbeOutcome = string | undefined | { readonly inconclusive: string };

/** What is probed, and how messages name it. */
export interface LivenessTarget {
  /** Says what failed: `did not answer /live`, `failed its livenessProbe (GET 127.0.0.1:8080/healthz)`. */
  readonly failed: string;
  readonly probe: (timeoutMs: number) => Promise<ProbeOutcome>;
}

/**
 * GET `url`: undefined when it answered 200-399 within `timeoutMs`, else what went wrong. With
 * `headers`, sent as the kubelet sends a probe's httpHeaders (over its own User-Agent and Accept).
 */
export function probeHttp(
  url: string,
  timeoutMs: number,
  headers: readonly { readonly name: string; readonly value: string }[] = [],
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let isDone = false;
    const done = (problem: string | undefined) => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      outgoing.destroy();
      resolve(problem);
    };
    const sent: Record<string, string> = { 'user-agent': 'mutual-up-probe', accept: '*/*' };
    for (const { name, value } of headers) sent[name.toLowerCase()] = value;
    const outgoing = request(url, { method: 'GET', agent: false, headers: sent }, (response) => {
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
 * The kubelet's tcpSocket probe: undefined when 127.0.0.1:`port` accepts a connection within
 * `timeoutMs`, else what went wrong. Nothing is sent; the connection is closed as a client would
 * (FIN, the app's greeting read and dropped), so an app without a socket 'error' handler is not
 * reset to death.
 */
export function probeTcp(port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`no connection within ${timeoutMs / 1000} s`);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(undefined);
      socket.resume();
      socket.end();
      setTimeout(() => socket.destroy(), 1_000).unref();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code ?? error.message);
    });
  });
}

/**
 * Probes `url` every period until `stop()` or `isWatching()` turns false (the process exited, the
 * mesh is stopping). Calls `onFailed` once, with why (`did not answer /live 3 times in 30 s (no
 * answer within 1 s)`), when the process should be killed; it probes no more after that.
 */
export function watchLiveness(
  /** A /live URL, or what else to probe (an app's livenessProbe). */
  target: string | LivenessTarget,
  settings: LivenessSettings,
  options: {
    readonly isWatching: () => boolean;
    readonly onFailed: (message: string) => void;
    /** It has answered already (a process up waited for), or counts every failure as the kubelet: no startup window. */
    readonly hasAnswered?: boolean;
    /** The first probe this long after the start, instead of one period (livenessProbe.initialDelaySeconds). */
    readonly initialDelaySeconds?: number;
  },
): { stop(): void } {
  const periodMs = settings.periodSeconds * 1000;
  const startedAtMs = Date.now();
  const { failed, probe } =
    typeof target === 'string'
      ? {
          failed: `did not answer ${new URL(target).pathname}`,
          probe: (timeoutMs: number) => probeHttp(target, timeoutMs),
        }
      : target;
  const window = `${livenessWindowSeconds(settings)} s`;
  let hasAnswered = options.hasAnswered === true;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let isStopped = false;
  const tick = async () => {
    if (isStopped || !options.isWatching()) return;
    const probedAtMs = Date.now();
    const problem = await probe(settings.timeoutSeconds * 1000);
    if (isStopped || !options.isWatching()) return;
    if (typeof problem === 'object') {
      // Neither alive nor failed: the next probe tells.
    } else if (problem === undefined) {
      hasAnswered = true;
      failures = 0;
    } else if (hasAnswered) {
      failures += 1;
      if (failures >= settings.failureThreshold) {
        options.onFailed(`${failed} ${failures} times in ${window} (${problem})`);
        return;
      }
    } else if (Date.now() - startedAtMs >= periodMs * settings.failureThreshold) {
      options.onFailed(`${failed} in the ${window} after it started (${problem})`);
      return;
    }
    // Every period from the start of one probe to the next, as the kubelet's.
    timer = setTimeout(() => void tick(), Math.max(0, periodMs - (Date.now() - probedAtMs)));
    timer.unref();
  };
  const initialDelayMs = (options.initialDelaySeconds ?? 0) * 1000;
  timer = setTimeout(() => void tick(), initialDelayMs > 0 ? initialDelayMs : periodMs);
  timer.unref();
  return {
    stop() {
      isStopped = true;
      clearTimeout(timer);
    },
  };
}
