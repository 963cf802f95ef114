// The app's own kubelet probes, handed to the proxy by the injector as JSON (Istio's
// ISTIO_KUBE_APP_PROBERS shape): `{ "/app-health/<container>/<livez|readyz|startupz>": { "httpGet":
// { "path", "port", "scheme"? ("HTTP" or "HTTPS"), "httpHeaders"? } | "grpc": { "port", "service"? } | "tcpSocket":
// { "port" }, "timeoutSeconds"? } }`. Parsed and checked here; the proxy's admin server answers
// those paths by making the original check against the app.

/** Environment variables the injector writes into the proxy container. */
export const PROXY_ENV = {
  /** The trust anchors, PEM: the alternative to `--identity-bundle FILE`. */
  identityBundlePem: 'MUTUAL_PROXY_IDENTITY_BUNDLE_PEM',
  /** The app's rewritten probes, JSON (see above). */
  appProbes: 'MUTUAL_PROXY_APP_PROBES',
  /** The pod's labels as KEY=VALUE,… (`--label`), which policy selectors match. */
  labels: 'MUTUAL_PROXY_LABEL',
} as const;

export const APP_HEALTH_PREFIX = '/app-health';

/** The Kubernetes probe field and the last path segment of its rewritten path. */
export const APP_PROBE_KINDS = {
  livenessProbe: 'livez',
  readinessProbe: 'readyz',
  startupProbe: 'startupz',
} as const;
export type AppProbeField = keyof typeof APP_PROBE_KINDS;

/** `/app-health/web/livez`: where the kubelet asks the proxy about container `web`. */
export function appProbePath(container: string, field: AppProbeField): string {
  return `${APP_HEALTH_PREFIX}/${container}/${APP_PROBE_KINDS[field]}`;
}

/**
 * One original probe as the proxy runs it against 127.0.0.1:<port>: GET <path> (kind http, the
 * default; over TLS with scheme HTTPS), a grpc.health.v1.Health/Check of `grpcService` (kind grpc),
 * or a connect (kind tcp).
 */
export interface AppProbe {
  readonly kind?: 'http' | 'grpc' | 'tcp';
  /** Kind http: HTTPS makes the GET over TLS, the app's certificate not verified (as the kubelet). */
  readonly scheme?: 'HTTP' | 'HTTPS';
  readonly port: number;
  /** Path and query, as the kubelet would send it (kind http; "" otherwise). */
  readonly path: string;
  readonly headers: readonly (readonly [string, string])[];
  /** The service name the health check asks about (kind grpc); "" is the server as a whole. */
  readonly grpcService?: string;
  readonly timeoutMs: number;
}

/** What the injector writes per path (the JSON value): one of httpGet, grpc, tcpSocket. */
export type AppProbeSpec = (
  | {
      readonly httpGet: {
        readonly path: string;
        readonly port: number;
        readonly scheme?: 'HTTP' | 'HTTPS';
        readonly httpHeaders?: readonly { readonly name: string; readonly value: string }[];
      };
    }
  | { readonly grpc: { readonly port: number; readonly service?: string } }
  | { readonly tcpSocket: { readonly port: number } }
) & { readonly timeoutSeconds?: number };

const PATH_KEY = /^\/app-health\/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/(livez|readyz|startupz)$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_TIMEOUT_S = 3600;

/** Parses the JSON text; every problem is returned (named after `source`), none thrown. */
export function parseAppProbes(
  text: string,
  source: string,
): { probes: ReadonlyMap<string, AppProbe>; problems: string[] } {
  const probes = new Map<string, AppProbe>();
  const problems: string[] = [];
  const example = `{"/app-health/web/livez":{"httpGet":{"path":"/healthz","port":8080},"timeoutSeconds":1}}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    problems.push(`${source} is not JSON (${(error as Error).message}): write e.g. ${example}`);
    return { probes, problems };
  }
  if (!isRecord(parsed)) {
    problems.push(`${source} must be a JSON object of probe path → probe, e.g. ${example}`);
    return { probes, problems };
  }
  for (const [key, value] of Object.entries(parsed)) {
    const at = `${source} ${JSON.stringify(key)}`;
    const problem = (message: string) => problems.push(`${at}: ${message}`);
    if (!PATH_KEY.test(key)) {
      problem('is not a probe path: write /app-health/<container>/livez, readyz or startupz');
      continue;
    }
    const checks = isRecord(value)
      ? (['httpGet', 'grpc', 'tcpSocket'] as const).filter((k) => k in value)
      : [];
    if (!isRecord(value) || checks.length !== 1 || !isRecord(value[checks[0]!])) {
      problem(
        'needs an object with one of "httpGet": {"path", "port"}, "grpc": {"port"} or "tcpSocket": {"port"}',
      );
      continue;
    }
    const before = problems.length;
    const timeoutSeconds = value.timeoutSeconds ?? 1;
    const checkTimeout = () => {
      if (
        !Number.isInteger(timeoutSeconds) ||
        (timeoutSeconds as number) < 1 ||
        (timeoutSeconds as number) > MAX_TIMEOUT_S
      ) {
        problem(
          `timeoutSeconds ${JSON.stringify(timeoutSeconds)} must be a whole number of seconds from 1 to ${MAX_TIMEOUT_S}`,
        );
      }
    };
    const kind = checks[0]!;
    if (kind !== 'httpGet') {
      const check = value[kind] as Record<string, unknown>;
      const allowed = kind === 'grpc' ? ['port', 'service'] : ['port'];
      const unknown = [
        ...Object.keys(value).filter((field) => field !== kind && field !== 'timeoutSeconds'),
        ...Object.keys(check)
          .filter((field) => !allowed.includes(field))
          .map((field) => `${kind}.${field}`),
      ];
      if (unknown.length > 0)
        problem(`unknown field ${unknown.join(', ')} (the proxy only probes 127.0.0.1)`);
      const { port, service } = check;
      if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
        problem(
          `${kind}.port ${JSON.stringify(port)} must be a number from 1 to 65535 (named ports are resolved by the injector)`,
        );
      }
      if (service !== undefined && (typeof service !== 'string' || !/^[\x20-\x7e]{0,1024}$/.test(service))) {
        problem(`grpc.service ${JSON.stringify(service)} must be printable ASCII, at most 1024 characters`);
      }
      checkTimeout();
      if (problems.length === before) {
        probes.set(key, {
          kind: kind === 'grpc' ? 'grpc' : 'tcp',
          port: port as number,
          path: '',
          headers: [],
          ...(kind === 'grpc' ? { grpcService: (service as string | undefined) ?? '' } : {}),
          timeoutMs: (timeoutSeconds as number) * 1000,
        });
      }
      continue;
    }
    const unknown = Object.keys(value).filter((field) => field !== 'httpGet' && field !== 'timeoutSeconds');
    const httpGet = value.httpGet as Record<string, unknown>;
    unknown.push(
      ...Object.keys(httpGet)
        .filter((field) => !['path', 'port', 'scheme', 'httpHeaders'].includes(field))
        .map((field) => `httpGet.${field}`),
    );
    if (unknown.length > 0) problem(`unknown field ${unknown.join(', ')} (the proxy only probes 127.0.0.1)`);
    const { path, port, scheme, httpHeaders } = httpGet;
    if (typeof path !== 'string' || !/^\/[\x21-\x7e]*$/.test(path)) {
      problem(
        `httpGet.path ${JSON.stringify(path)} must start with "/" and hold only printable ASCII, no spaces (percent-encode the rest)`,
      );
    }
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
      problem(
        `httpGet.port ${JSON.stringify(port)} must be a number from 1 to 65535 (named ports are resolved by the injector)`,
      );
    }
    if (scheme !== undefined && scheme !== 'HTTP' && scheme !== 'HTTPS') {
      problem(
        `httpGet.scheme ${JSON.stringify(scheme)} is not supported: write HTTP or HTTPS (or leave it out: HTTP)`,
      );
    }
    const headers: [string, string][] = [];
    if (httpHeaders !== undefined) {
      if (!Array.isArray(httpHeaders)) problem('httpGet.httpHeaders must be a list of {"name", "value"}');
      else {
        for (const header of httpHeaders) {
          const name = isRecord(header) ? header.name : undefined;
          const headerValue = isRecord(header) ? header.value : undefined;
          if (
            typeof name !== 'string' ||
            !HEADER_NAME.test(name) ||
            typeof headerValue !== 'string' ||
            /[\r\n\0]/.test(headerValue)
          ) {
            problem(
              `httpGet.httpHeaders ${JSON.stringify(header)} is not a {"name": token, "value": text} header`,
            );
          } else headers.push([name, headerValue]);
        }
      }
    }
    checkTimeout();
    if (problems.length === before) {
      probes.set(key, {
        ...(scheme === 'HTTPS' ? { scheme: 'HTTPS' as const } : {}),
        port: port as number,
        path: path as string,
        headers,
        timeoutMs: (timeoutSeconds as number) * 1000,
      });
    }
  }
  return { probes, problems };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
