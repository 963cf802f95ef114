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
});
const seconds = z
  .number({ error: 'must be a number of seconds, e.g. 10' })
  .int('must be a whole number of seconds')
  .min(1, 'must be at least 1 (second)')
  .max(3600, 'must be at most 3600 (an hour)');
export const livenessSchema = z.strictObject({
  periodSeconds: seconds.default(LIVENESS_DEFAULTS.periodSeconds),
  failureThreshold: z
    .number({ error: 'must be a number of failures in a row, e.g. 3' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(100, 'must be at most 100')
    .default(LIVENESS_DEFAULTS.failureThreshold),
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
export function meshFileFields(): Record<'mesh' | 'liveness' | 'service' | 'port' | 'upstream', string[]> {
  return {
    mesh: Object.keys(meshSchema.shape),
    liveness: Object.keys(livenessSchema.shape),
    service: Object.keys(serviceSchema.shape),
    port: ['port', 'protocol'],
    upstream: ['service', 'port', 'env'],
  };
}
