// An app's livenessProbe (mesh.yaml) as `up` runs it. Loopback: the app listens on 127.0.0.1:$PORT,
// so up probes it there itself, as the kubelet probes a pod (HTTPS and gRPC with the proxy's
// probeApp, the client the sidecar uses for the kubelet's probes). netns: the app is inside its pod, where
// up's own connections cannot reach 127.0.0.1 and the pod's address is the sidecar's (STRICT
// refuses a plain probe); up asks the sidecar's admin port instead, which makes the probe against
// the app from inside the pod (the proxy's /app-health routes: Istio's probe rewrite, as Kubernetes
// pods get from `mutual inject`).
import { request } from 'node:http';
import { type AppProbe, type AppProbeSpec, appProbePath, PROXY_ENV } from '../config/index.ts';
import { probeApp } from '../proxy/index.ts';
import { type LivenessTarget, type ProbeOutcome, probeHttp, probeTcp } from './liveness.ts';
import type { AppLivenessProbe } from './mesh-config.ts';
import type { ServicePlan } from './plan.ts';
import type { Restartable } from './restarts.ts';

/** As probeHttp's: the app's log tells up's probes from its callers'. */
const USER_AGENT = 'mutual-up-probe';

/** What the sidecar of a netns pod needs to probe its app: MUTUAL_PROXY_APP_PROBES. */
export function sidecarProbeEnv(name: string, probe: AppLivenessProbe): Record<string, string> {
  const { check, timeoutSeconds } = probe;
  const spec: AppProbeSpec =
    check.kind === 'http'
      ? {
          httpGet: {
            path: check.path,
            port: check.port,
            ...(check.scheme === 'HTTPS' ? { scheme: check.scheme } : {}),
            ...(check.headers.length > 0 ? { httpHeaders: check.headers } : {}),
          },
          timeoutSeconds,
        }
      : check.kind === 'grpc'
        ? {
            grpc: { port: check.port, ...(check.service === '' ? {} : { service: check.service }) },
            timeoutSeconds,
          }
        : { tcpSocket: { port: check.port }, timeoutSeconds };
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

/** How messages name the check: `GET http://127.0.0.1:8080/healthz`, `tcpSocket 127.0.0.1:6379`. */
function describeCheck(check: AppLivenessProbe['check'], port: number): string {
  if (check.kind === 'tcp') return `tcpSocket 127.0.0.1:${port}`;
  if (check.kind === 'grpc')
    return `gRPC health check of ${check.service === '' ? 'the server' : JSON.stringify(check.service)} at 127.0.0.1:${port}`;
  return `GET ${check.scheme === 'HTTPS' ? 'https' : 'http'}://127.0.0.1:${port}${check.path}`;
}

/** Loopback: 127.0.0.1 and the $PORT the app was given for the port (a port it was not given, as written). */
function direct(servicePlan: ServicePlan, probe: AppLivenessProbe): LivenessTarget {
  const { check } = probe;
  const port = servicePlan.ports.find((declared) => declared.port === check.port)?.appPort ?? check.port;
  const failed = `failed its livenessProbe (${describeCheck(check, port)})`;
  if (check.kind === 'tcp') return { failed, probe: (timeoutMs) => probeTcp(port, timeoutMs) };
  if (check.kind === 'http' && check.scheme !== 'HTTPS') {
    const url = `http://127.0.0.1:${port}${check.path}`;
    return { failed, probe: (timeoutMs) => probeHttp(url, timeoutMs, check.headers) };
  }
  // HTTPS and gRPC as the sidecar makes them for the kubelet (the proxy's probeApp): one client.
  const appProbe: AppProbe =
    check.kind === 'grpc'
      ? { kind: 'grpc', port, path: '', headers: [], grpcService: check.service, timeoutMs: 0 }
      : {
          scheme: 'HTTPS',
          port,
          path: check.path,
          headers: check.headers.map(({ name, value }) => [name, value] as const),
          timeoutMs: 0,
        };
  return {
    failed,
    probe: async (timeoutMs) => {
      const result = await probeApp({ ...appProbe, timeoutMs }, USER_AGENT);
      return result.status >= 200 && result.status < 400 ? undefined : result.reason;
    },
  };
}

/**
 * netns: GET /app-health/<name>/livez on the sidecar's admin port, which answers with the app's
 * status (503 and why when the app did not answer). A sidecar that does not answer itself says
 * nothing of the app: inconclusive (the sidecar's own liveness deals with it).
 */
function throughSidecar(servicePlan: ServicePlan, probe: AppLivenessProbe): LivenessTarget {
  const name = servicePlan.service.name;
  const url = `${servicePlan.adminUrl}${appProbePath(name, 'livenessProbe')}`;
  return {
    failed: `failed its livenessProbe (${describeCheck(probe.check, probe.check.port)} in ${servicePlan.pod!.netns})`,
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
