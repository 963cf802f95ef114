// The shape of a mesh file (mesh.yaml): what each field may hold, as zod schemas, and the resolved
// config `mutual up` runs from. Reading, locating problems and cross-checks are mesh-config.ts's.
import { z } from 'zod';
import { isValidPathSegment } from '../spiffe/index.ts';
import { LIVENESS_DEFAULTS, type LivenessSettings } from './liveness.ts';
/** One port of a service's app, as its clients address it. */
export interface MeshPort {
  readonly port: number;
  /** `http` gets per-request metrics and policy; `tcp` is relayed as bytes. */
  readonly protocol: 'http' | 'tcp';
}

/** A call from one service to another, handed to the app as `<ENV>_ADDR` / `<ENV>_URL`. */
export interface MeshUpstream {
  readonly service: string;
  readonly port: number;
  /** Prefix of the environment variables, e.g. EMOJI. */
  readonly env: string;
}

export interface MeshService {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  /** argv; a string command is run by /bin/sh. */
  readonly command: readonly string[];
  /** Working directory of the app, absolute. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly ports: readonly MeshPort[];
  readonly upstreams: readonly MeshUpstream[];
  readonly opaquePorts: readonly number[];
  readonly skipInboundPorts: readonly number[];
  /** Whether the app is started again when it exits while the mesh runs (restarts.ts). */
  readonly restart: 'always' | 'on-failure' | 'never';
  /** How `up` probes the app while it runs, killing it when it stops answering (Kubernetes' livenessProbe). */
  readonly livenessProbe?: AppLivenessProbe;
}

/** A service's livenessProbe, resolved: the port is mesh.yaml's (the app's own when none was given). */
export interface AppLivenessProbe extends LivenessSettings {
  /** Seconds after the app starts before the first probe; 0: one periodSeconds. */
  readonly initialDelaySeconds: number;
  readonly check:
    | {
        readonly kind: 'http';
        /** HTTPS: the GET over TLS, the app's certificate not verified (as the kubelet's); absent: HTTP. */
        readonly scheme?: 'HTTPS';
        readonly port: number;
        readonly path: string;
        readonly headers: readonly { readonly name: string; readonly value: string }[];
      }
    | { readonly kind: 'tcp'; readonly port: number }
    /** grpc.health.v1.Health/Check of `service` ("" is the server as a whole), plaintext HTTP/2. */
    | { readonly kind: 'grpc'; readonly port: number; readonly service: string };
}

export interface MeshConfig {
  /** Absolute path of the mesh.yaml it came from. */
  readonly file: string;
  readonly trustDomain: string;
  /** Absolute; undefined when the file names none (every proxy then runs with --mode). */
  readonly policyDir: string | undefined;
  /** Peer authentication mode when there is no policy directory. */
  readonly mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
  /** Lifetime of the workload certificates the identity service signs, as written (e.g. `24h`). */
  readonly certificateLifetime: string;
  /** How `up` probes the control plane's and the sidecars' /live, killing one that stops answering. */
  readonly liveness: LivenessSettings;
  readonly services: readonly MeshService[];
}

/** The control plane's processes: `mutual logs identity` and `mutual logs destination` mean them. */
export const CONTROL_PLANE_NAMES: readonly string[] = ['identity', 'destination'];
/** What `identity serve --lifetime` takes, with a floor that leaves renewals room to retry. */
export const CERTIFICATE_LIFETIME_BOUNDS = { atLeast: '30s', atMost: '90d' } as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

const portNumber = z
  .number({ error: 'must be a port number' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');
const pathSegment = z
  .string()
  .refine(isValidPathSegment, 'must be letters, digits, ".", "-" or "_" (it becomes part of a SPIFFE ID)');

const portSchema = z.union(
  [portNumber, z.strictObject({ port: portNumber, protocol: z.enum(['http', 'tcp']).default('http') })],
  { error: 'write a port number, e.g. 8080, or { port: 8080, protocol: http|tcp }' },
);
export const upstreamSchema = z.union(
  [
    z.string().regex(/^[a-z0-9-]+(:\d{1,5})?$/, 'write SERVICE or SERVICE:PORT, e.g. emoji or emoji:8080'),
    z.strictObject({
      service: z.string(),
      port: portNumber.optional(),
      env: z.string().regex(ENV_NAME, 'must be an environment variable name such as EMOJI').optional(),
    }),
  ],
  { error: 'write SERVICE or SERVICE:PORT (e.g. emoji or emoji:8080), or { service, port, env }' },
);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const seconds = z
  .number({ error: 'must be a number of seconds, e.g. 10' })
  .int('must be a whole number of seconds')
  .min(1, 'must be at least 1 (second)')
  .max(3600, 'must be at most 3600 (an hour)');
const failureThreshold = z
  .number({ error: 'must be a number of failures in a row, e.g. 3' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(100, 'must be at most 100');
const probePort = z
  .number({ error: 'must be a port number (mesh.yaml ports have no names), e.g. 8080' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');
/** A probe Kubernetes has and `up` does not run: refused with what to write instead. */
const refusedProbe = (message: string) =>
  z
    .unknown()
    .refine(() => false, message)
    .optional();
export const httpGetSchema = z.strictObject({
  path: z
    .string({ error: 'must be the path to GET, e.g. /healthz' })
    .regex(
      /^\/[\x21-\x7e]*$/,
      'must start with "/" and hold only printable ASCII, no spaces (percent-encode the rest), e.g. /healthz',
    )
    .default('/'),
  port: probePort.optional(),
  httpHeaders: z
    .array(
      z.strictObject({
        name: z.string().regex(HEADER_NAME, 'must be a header name, e.g. X-Probe'),
        value: z.string().refine((value) => !/[\r\n\0]/.test(value), 'must be one line of text'),
      }),
    )
    .optional(),
  scheme: z
    .enum(['HTTP', 'HTTPS'], {
      error:
        'must be HTTP (the default: plain HTTP to the app, as its sidecar speaks to it) or HTTPS (for an app that serves TLS itself; its certificate is not verified, as by the kubelet)',
    })
    .optional(),
});
export const tcpSocketSchema = z.strictObject({ port: probePort.optional() });
export const grpcSchema = z.strictObject({
  port: probePort.optional(),
  service: z
    .string()
    .regex(
      /^[\x20-\x7e]{0,1024}$/,
      'must be printable ASCII, at most 1024 characters: the name the app registered with its health service, e.g. orders.v1.Orders',
    )
    .optional(),
});
export const livenessProbeSchema = z.strictObject({
  httpGet: httpGetSchema.optional(),
  tcpSocket: tcpSocketSchema.optional(),
  exec: refusedProbe(
    'exec probes are not supported: mutual up runs no command inside the app to probe it; serve a health path and write httpGet: { path: /healthz }, or tcpSocket: {} for an app that only accepts connections',
  ),
  grpc: grpcSchema.optional(),
  initialDelaySeconds: z
    .number({ error: 'must be a number of seconds, e.g. 5' })
    .int('must be a whole number of seconds')
    .min(0, 'must be 0 or more')
    .max(3600, 'must be at most 3600 (an hour)')
    .default(0),
  periodSeconds: seconds.default(LIVENESS_DEFAULTS.periodSeconds),
  timeoutSeconds: seconds.default(LIVENESS_DEFAULTS.timeoutSeconds),
  failureThreshold: failureThreshold.default(LIVENESS_DEFAULTS.failureThreshold),
  successThreshold: z
    .literal(1, {
      error: 'must be 1: a liveness probe passes on one success (Kubernetes refuses any other value)',
    })
    .default(1),
});
export const serviceSchema = z.strictObject({
  name: z.string().regex(DNS_LABEL, 'must be a DNS label: lower-case letters, digits and "-", e.g. web'),
  namespace: pathSegment.default('default'),
  serviceAccount: pathSegment.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  command: z.union([z.string().min(1), z.array(z.string()).min(1)], {
    error: 'write the program and its arguments, e.g. [node, app.mjs], or a shell command string',
  }),
  cwd: z.string().optional(),
  env: z.record(z.string().regex(ENV_NAME, 'must be an environment variable name'), z.string()).default({}),
  ports: z.array(portSchema).default([]),
  upstreams: z.array(upstreamSchema).default([]),
  opaquePorts: z.array(portNumber).default([]),
  skipInboundPorts: z.array(portNumber).default([]),
  restart: z
    .enum(['always', 'on-failure', 'never'], {
      error: 'must be always, on-failure (a crash or a kill, the default) or never',
    })
    .default('on-failure'),
  livenessProbe: livenessProbeSchema.optional(),
});
export const livenessSchema = z.strictObject({
  periodSeconds: seconds.default(LIVENESS_DEFAULTS.periodSeconds),
  failureThreshold: failureThreshold.default(LIVENESS_DEFAULTS.failureThreshold),
  timeoutSeconds: seconds.default(LIVENESS_DEFAULTS.timeoutSeconds),
});
export const meshSchema = z.strictObject({
  trustDomain: z.string().default('cluster.local'),
  policyDir: z.string().optional(),
  mode: z.enum(['STRICT', 'PERMISSIVE', 'DISABLE']).default('STRICT'),
  certificateLifetime: z.string({ error: 'write a duration, e.g. 24h or 5m' }).default('24h'),
  liveness: livenessSchema.default({ ...LIVENESS_DEFAULTS }),
  services: z.array(serviceSchema).min(1, 'declare at least one service'),
});

/** Every field a mesh file may have, by where it goes (docs/mesh.md lists each). */
export function meshFileFields(): Record<
  'mesh' | 'liveness' | 'service' | 'livenessProbe' | 'httpGet' | 'tcpSocket' | 'grpc' | 'port' | 'upstream',
  string[]
> {
  return {
    mesh: Object.keys(meshSchema.shape),
    liveness: Object.keys(livenessSchema.shape),
    service: Object.keys(serviceSchema.shape),
    // exec is refused with what to write instead: not a field to list.
    livenessProbe: Object.keys(livenessProbeSchema.shape).filter((key) => key !== 'exec'),
    httpGet: Object.keys(httpGetSchema.shape),
    tcpSocket: Object.keys(tcpSocketSchema.shape),
    grpc: Object.keys(grpcSchema.shape),
    port: ['port', 'protocol'],
    upstream: ['service', 'port', 'env'],
  };
}
