// An app's livenessProbe (mesh.yaml) as `up` runs it. Loopback: the app listens on 127.0.0.1:$PORT,
// so up probes it there itself, as the kubelet probes a pod. netns: the app is inside its pod, where
// up's own connections cannot reach 127.0.0.1 and the pod's address is the sidecar's (STRICT
// refuses a plain probe); up asks the sidecar's admin port instead, which makes the probe against
// the app from inside the pod (the proxy's /app-health routes: Istio's probe rewrite, as Kubernetes
// pods get from `mutual inject`).
import { request } from 'node:http';
import { type AppProbeSpec, appProbePath, PROXY_ENV } from '../config/index.ts';
import { type LivenessTarget, type ProbeOutcome, probeHttp, probeTcp } from './liveness.ts';
import type { AppLivenessProbe } from './mesh-config.ts';
import type { ServicePlan } from './plan.ts';
import type { Restartable } from './restarts.ts';

/** What the sidecar of a netns pod needs to probe its app: MUTUAL_PROXY_APP_PROBES. */
export function sidecarProbeEnv(name: string, probe: AppLivenessProbe): Record<string, string> {
  const spec: AppProbeSpec =
    probe.check.kind === 'http'
      ? {
          httpGet: {
            path: probe.check.path,
            port: probe.check.port,
            ...(probe.check.headers.length > 0 ? { httpHeaders: probe.check.headers } : {}),
          },
          timeoutSeconds: probe.timeoutSeconds,
        }
      : { tcpSocket: { port: probe.check.port }, timeoutSeconds: probe.timeoutSeconds };
  return { [PROXY_ENV.appProbes]: JSON.stringify({ [appProbePath(name, 'livenessProbe')]: spec }) };
}

/** The app's livenessProbe as restarts.ts watches it, or undefined when it has none. */
export function appLiveness(servicePlan: ServicePlan): Restartable['livenessProbe'] {
  const probe = servicePlan.service.livenessProbe;
  if (probe === undefined) return undefined;
  return {
    target: servicePlan.pod ? throughSidecar(servicePlan, probe) : direct(servicePlan, probe),
    settings: probe,
    initialDelaySeconds: probe.initialDelaySeconds,
  };
}

/** Loopback: 127.0.0.1 and the $PORT the app was given for the port (a port it was not given, as written). */
function direct(servicePlan: ServicePlan, probe: AppLivenessProbe): LivenessTarget {
  const { check } = probe;
  const port = servicePlan.ports.find((declared) => declared.port === check.port)?.appPort ?? check.port;
  if (check.kind === 'tcp')
    return {
      failed: `failed its livenessProbe (tcpSocket 127.0.0.1:${port})`,
      probe: (timeoutMs) => probeTcp(port, timeoutMs),
    };
  const url = `http://127.0.0.1:${port}${check.path}`;
  return {
    failed: `failed its livenessProbe (GET ${url})`,
    probe: (timeoutMs) => probeHttp(url, timeoutMs, check.headers),
  };
}

/**
 * netns: GET /app-health/<name>/livez on the sidecar's admin port, which answers with the app's
 * status (503 and why when the app did not answer). A sidecar that does not answer itself says
 * nothing of the app: inconclusive (the sidecar's own liveness deals with it).
 */
function throughSidecar(servicePlan: ServicePlan, probe: AppLivenessProbe): LivenessTarget {
  const { check } = probe;
  const name = servicePlan.service.name;
  const target =
    check.kind === 'tcp'
      ? `tcpSocket 127.0.0.1:${check.port}`
      : `GET http://127.0.0.1:${check.port}${check.path}`;
  const url = `${servicePlan.adminUrl}${appProbePath(name, 'livenessProbe')}`;
  return {
    failed: `failed its livenessProbe (${target} in ${servicePlan.pod!.netns})`,
    // The sidecar waits timeoutSeconds for the app, then answers: give it a second more.
    probe: (timeoutMs) => askSidecar(url, timeoutMs + 1000),
  };
}

function askSidecar(url: string, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let isDone = false;
    const done = (outcome: ProbeOutcome) => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      outgoing.destroy();
      resolve(outcome);
    };
    const sidecarSilent = (why: string) =>
      done({ inconclusive: `its sidecar's admin port did not answer ${url} (${why})` });
    const outgoing = request(url, { method: 'GET', agent: false }, (response) => {
      const status = response.statusCode ?? 0;
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (body.length < 1024) body += chunk;
      });
      response.on('end', () =>
        done(status >= 200 && status < 400 ? undefined : body.trim() || `answered ${status}`),
      );
      response.on('error', (error) => sidecarSilent(error.message));
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => sidecarSilent(error.code ?? error.message));
    const timer = setTimeout(() => sidecarSilent(`no answer within ${timeoutMs / 1000} s`), timeoutMs);
    outgoing.end();
  });
}
