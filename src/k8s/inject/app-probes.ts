// Kubelet probes under STRICT (Istio's probe rewrite): the kubelet's HTTP(S) and gRPC probes would
// be redirected to the proxy and refused (an HTTPS probe too: by IP, without SNI, the proxy takes its
// handshake for mesh mTLS and finds no client certificate), so each app container's httpGet,
// grpc and tcpSocket probe is pointed at the proxy's admin port (never redirected) at
// /app-health/<container>/<livez|readyz|startupz> as an httpGet, and the original goes to the
// proxy, which makes it on 127.0.0.1 (a gRPC health check for grpc; over TLS for scheme HTTPS,
// the app's certificate unverified as by the kubelet). A tcpSocket probe left alone would always
// pass: the proxy, not the app, accepts the kubelet's connection. Left alone, and why:
//   - a probe with `host`: it does not probe this pod;
//   - a named port no container port declares: the kubelet could not resolve it either;
//   - exec (runs in the container, no network);
//   - one the proxy's own check of MUTUAL_PROXY_APP_PROBES refuses (a timeout over an hour), which
//     would stop the proxy, and the pod with it.
// The path is the one the kubelet requests (a "/" added, spaces and non-ASCII percent-encoded) and
// a timeout of 0 is the API server's default, 1 s: offline, nothing has defaulted the pod yet.
import {
  type AppProbeField,
  type AppProbeSpec,
  appProbePath,
  PROXY_ENV,
  parseAppProbes,
} from '../../config/index.ts';
import { PROXY_PORTS } from '../constants.ts';

const PROBE_FIELDS: readonly AppProbeField[] = ['livenessProbe', 'readinessProbe', 'startupProbe'];

interface HttpGetLike {
  path?: unknown;
  port?: unknown;
  host?: unknown;
  scheme?: unknown;
  httpHeaders?: unknown;
}
interface ProbeLike {
  httpGet?: HttpGetLike;
  grpc?: { port?: unknown; service?: unknown };
  tcpSocket?: { port?: unknown; host?: unknown };
  timeoutSeconds?: unknown;
  [key: string]: unknown;
}
export interface AppContainerLike {
  name?: unknown;
  ports?: { name?: unknown; containerPort?: unknown }[];
  livenessProbe?: ProbeLike;
  readinessProbe?: ProbeLike;
  startupProbe?: ProbeLike;
  [key: string]: unknown;
}

export interface ProbeRewrite {
  /** The app containers, their HTTP(S), gRPC and TCP probes pointed at the proxy's admin port. */
  readonly containers: AppContainerLike[];
  /** `/app-health/<container>/<kind>` → the original probe: the proxy's MUTUAL_PROXY_APP_PROBES. */
  readonly probes: Record<string, AppProbeSpec>;
  /** Paths of the httpGet probes left alone: the kubelet still reaches the app there, through the proxy. */
  readonly keptProbePaths: string[];
}

export function rewriteAppProbes(containers: readonly AppContainerLike[], isEnabled: boolean): ProbeRewrite {
  const probes: Record<string, AppProbeSpec> = {};
  const kept = new Set<string>();
  const rewritten = containers.map((container) => {
    const next: AppContainerLike = { ...container };
    for (const field of PROBE_FIELDS) {
      const probe = container[field];
      if (!probe) continue;
      const httpGet = probe.httpGet;
      const path = appProbePath(String(container.name), field);
      if (!httpGet) {
        const other = isEnabled ? otherProbe(container, probe) : undefined;
        if (!other || !isAccepted(path, other)) continue;
        probes[path] = other;
        // The check becomes an httpGet: the one field of grpc or tcpSocket goes, the rest stays.
        const { grpc: _grpc, tcpSocket: _tcpSocket, ...rest } = probe;
        next[field] = { ...rest, httpGet: { path, port: PROXY_PORTS.admin, scheme: 'HTTP' } };
        continue;
      }
      const original = isEnabled ? originalProbe(container, probe, httpGet) : undefined;
      if (!original || !isAccepted(path, original)) {
        if (typeof httpGet.path === 'string' && httpGet.path !== '') {
          const requested = kubeletRequestPath(httpGet.path);
          kept.add(requested.split('?')[0] ?? requested);
        }
        continue;
      }
      probes[path] = original;
      // Every other field (period, thresholds, timeout) stays: the kubelet's schedule is unchanged.
      next[field] = { ...probe, httpGet: { path, port: PROXY_PORTS.admin, scheme: 'HTTP' } };
    }
    return next;
  });
  return { containers: rewritten, probes, keptProbePaths: [...kept] };
}

/** A grpc or tcpSocket probe as the proxy will make it, or undefined when it is one to leave alone. */
function otherProbe(container: AppContainerLike, probe: ProbeLike): AppProbeSpec | undefined {
  const timeoutSeconds = probeTimeoutSeconds(probe);
  if (probe.grpc) {
    // The API's grpc.port is a number, never a name; service defaults to "" (the whole server).
    const { port, service } = probe.grpc;
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) return undefined;
    if (service !== undefined && service !== null && typeof service !== 'string') return undefined;
    return {
      grpc: { port: port as number, ...(typeof service === 'string' && service !== '' ? { service } : {}) },
      timeoutSeconds,
    };
  }
  if (probe.tcpSocket) {
    if (probe.tcpSocket.host !== undefined && probe.tcpSocket.host !== '') return undefined;
    const port = resolvePort(container, probe.tcpSocket.port);
    return port === undefined ? undefined : { tcpSocket: { port }, timeoutSeconds };
  }
  return undefined;
}

/** The API server defaults 0 (or none) to 1 s. */
function probeTimeoutSeconds(probe: ProbeLike): number {
  return Number.isInteger(probe.timeoutSeconds) && (probe.timeoutSeconds as number) > 0
    ? (probe.timeoutSeconds as number)
    : 1;
}

/** The probe as the proxy will make it, or undefined when it is one to leave alone. */
function originalProbe(
  container: AppContainerLike,
  probe: ProbeLike,
  httpGet: HttpGetLike,
): AppProbeSpec | undefined {
  if (httpGet.host !== undefined && httpGet.host !== '') return undefined;
  const scheme = httpGet.scheme ?? 'HTTP';
  if (scheme !== 'HTTP' && scheme !== 'HTTPS') return undefined;
  const port = resolvePort(container, httpGet.port);
  if (port === undefined) return undefined;
  const path = kubeletRequestPath(typeof httpGet.path === 'string' ? httpGet.path : '');
  const headers = Array.isArray(httpGet.httpHeaders)
    ? (httpGet.httpHeaders as unknown[]).filter(
        (header): header is { name: string; value: string } =>
          typeof (header as { name?: unknown })?.name === 'string' &&
          typeof (header as { value?: unknown })?.value === 'string',
      )
    : [];
  const timeoutSeconds = probeTimeoutSeconds(probe);
  return {
    httpGet: {
      path,
      port,
      ...(scheme === 'HTTPS' ? { scheme } : {}),
      ...(headers.length > 0 ? { httpHeaders: headers.map(({ name, value }) => ({ name, value })) } : {}),
    },
    timeoutSeconds,
  };
}

/**
 * The path and query the kubelet requests for a probe's `path` (Go's url.URL: "/" before a relative
 * path, spaces and non-ASCII percent-encoded, no fragment); an empty path is "/".
 */
function kubeletRequestPath(written: string): string {
  const withoutFragment = written.split('#')[0] ?? '';
  const queryAt = withoutFragment.indexOf('?');
  const pathPart = queryAt === -1 ? withoutFragment : withoutFragment.slice(0, queryAt);
  const query = queryAt === -1 ? '' : withoutFragment.slice(queryAt);
  const absolute = pathPart.startsWith('/') ? pathPart : `/${pathPart}`;
  return `${absolute.replace(/[^\x21-\x7e]/gu, (char) => encodeURIComponent(char))}${query}`;
}

/** Whether the proxy will take this probe: one it refuses would stop it from starting. */
function isAccepted(path: string, probe: AppProbeSpec): boolean {
  return parseAppProbes(JSON.stringify({ [path]: probe }), PROXY_ENV.appProbes).problems.length === 0;
}

/** A number, a numeric string, or the name of one of the container's ports. */
function resolvePort(container: AppContainerLike, port: unknown): number | undefined {
  const asNumber =
    typeof port === 'number'
      ? port
      : typeof port === 'string' && /^\d+$/.test(port)
        ? Number(port)
        : undefined;
  if (asNumber !== undefined) return asNumber >= 1 && asNumber <= 65535 ? asNumber : undefined;
  if (typeof port !== 'string') return undefined;
  const named = (container.ports ?? []).find((entry) => entry.name === port);
  const value = Number(named?.containerPort);
  return Number.isInteger(value) && value >= 1 && value <= 65535 ? value : undefined;
}
