// The containers and volumes injection adds to a pod: `mutual-init` (iptables, then exits) and
// `mutual-proxy` (a native sidecar: an init container with restartPolicy Always, so it starts
// before the app, outlives it and does not keep a Job from completing).
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import { type AppProbeSpec, PROXY_ENV, SIDECAR_NODE_FLAGS } from '../../config/index.ts';
import {
  CONTROL_PLANE,
  CONTROL_PLANE_NAMESPACE,
  IDENTITY_TOKEN_AUDIENCE,
  PROXY_PORTS,
  PROXY_UID,
} from '../constants.ts';
import type { PeerAuthenticationMode } from './pod-annotations.ts';
import type { ProxyResources } from './proxy-resources.ts';

export const INIT_CONTAINER_NAME = 'mutual-init';
export const PROXY_CONTAINER_NAME = 'mutual-proxy';

export const VOLUMES = {
  token: 'mutual-identity-token',
  identity: 'mutual-identity',
  initRun: 'mutual-init-run',
} as const;

/** Where the proxy finds its files; the token is read again on every renewal. */
export const PROXY_PATHS = {
  tokenDir: '/var/run/secrets/mutual.dev/serviceaccount',
  tokenFile: '/var/run/secrets/mutual.dev/serviceaccount/token',
  identityDir: '/var/run/mutual/identity',
} as const;

export const TOKEN_EXPIRATION_S = 3600;

/** mutual-init's requests and limits (see initContainer). */
export const INIT_RESOURCES = { cpu: '100m', memory: '128Mi' } as const;

/** Downward-API variables the proxy's arguments refer to as `$(NAME)`; Kubernetes expands them. */
export const POD_ENV = {
  namespace: 'MUTUAL_POD_NAMESPACE',
  serviceAccount: 'MUTUAL_POD_SERVICE_ACCOUNT',
} as const;

const svc = (component: { name: string; port: number }) =>
  `https://${component.name}.${CONTROL_PLANE_NAMESPACE}.svc:${component.port}`;
export const IDENTITY_URL = svc(CONTROL_PLANE.identity);
export const DESTINATION_URL = svc(CONTROL_PLANE.destination);
/** The same service answers the policies for the pod's namespace (GET /v1/policies). */
export const POLICY_URL = DESTINATION_URL;

export interface SidecarSpec {
  readonly image: string;
  readonly trustDomain: string;
  /** The mesh's trust anchors (PEM), written into the proxy's environment: no ConfigMap per namespace. */
  readonly trustAnchorsPem: string;
  /** The app's rewritten HTTP probes by admin path; the proxy makes the originals. */
  readonly appProbes: Readonly<Record<string, AppProbeSpec>>;
  readonly skipInboundPorts: string;
  readonly skipOutboundPorts: string;
  readonly skipOutboundSubnets: string;
  readonly opaquePorts?: string;
  readonly mode?: PeerAuthenticationMode;
  readonly resources: ProxyResources;
  /** HTTP paths of the app's own probes: the kubelet's checks are never refused by authorization. */
  readonly probePaths: readonly string[];
  /** The pod's labels at injection, which policy selectors (matchLabels) match. */
  readonly labels: Readonly<Record<string, string>>;
}

export function initContainer(spec: SidecarSpec): IContainer {
  const flag = (name: string, value: string) => (value === '' ? [] : [name, value]);
  return {
    name: INIT_CONTAINER_NAME,
    image: spec.image,
    imagePullPolicy: 'IfNotPresent',
    args: [
      'proxy',
      'init',
      '--inbound-port',
      String(PROXY_PORTS.inbound),
      '--outbound-port',
      String(PROXY_PORTS.outbound),
      // The admin port is never redirected, so the kubelet's probes reach the proxy directly.
      '--admin-port',
      String(PROXY_PORTS.admin),
      '--proxy-uid',
      String(PROXY_UID),
      ...flag('--skip-inbound-ports', spec.skipInboundPorts),
      ...flag('--skip-outbound-ports', spec.skipOutboundPorts),
      ...flag('--skip-outbound-subnets', spec.skipOutboundSubnets),
    ],
    // Limits on both, so a namespace whose ResourceQuota counts limits.cpu or limits.memory (it
    // then refuses a pod with any container, init ones included, lacking them) admits the pod.
    // Requests equal to the limits: the pod's QoS class counts init containers too, so a pod whose
    // containers all have requests == limits stays Guaranteed once the proxy's are set so. Sized
    // for `node mutual.js proxy init` (~70 MB RSS, ~0.1 s of CPU) and no more than the proxy's own
    // default requests: the pod's effective request is the larger of its biggest init container and
    // its other containers together, so these add nothing to it.
    resources: { requests: INIT_RESOURCES, limits: INIT_RESOURCES },
    securityContext: {
      // iptables needs root in the pod's network namespace and these two capabilities, nothing more.
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // iptables takes its lock in /run; the root filesystem is read-only.
    volumeMounts: [{ name: VOLUMES.initRun, mountPath: '/run' }],
  };
}

function adminProbe(path: string, periodSeconds: number, failureThreshold: number): IProbe {
  return {
    httpGet: { path, port: PROXY_PORTS.admin },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 1,
  };
}

export function proxyContainer(spec: SidecarSpec): IContainer {
  const spiffeId = `spiffe://${spec.trustDomain}/ns/$(${POD_ENV.namespace})/sa/$(${POD_ENV.serviceAccount})`;
  const { resources } = spec;
  const limits = {
    ...(resources.cpuLimit === undefined ? {} : { cpu: resources.cpuLimit }),
    ...(resources.memoryLimit === undefined ? {} : { memory: resources.memoryLimit }),
  };
  return {
    name: PROXY_CONTAINER_NAME,
    image: spec.image,
    imagePullPolicy: 'IfNotPresent',
    // A native sidecar: started before the app containers, stopped after them.
    restartPolicy: 'Always',
    args: [
      'proxy',
      'run',
      '--identity-url',
      IDENTITY_URL,
      '--token-file',
      PROXY_PATHS.tokenFile,
      '--spiffe-id',
      spiffeId,
      '--destination-url',
      DESTINATION_URL,
      '--policy-url',
      POLICY_URL,
      '--inbound-listen',
      `0.0.0.0:${PROXY_PORTS.inbound}`,
      '--outbound-listen',
      `127.0.0.1:${PROXY_PORTS.outbound}`,
      '--admin-listen',
      `0.0.0.0:${PROXY_PORTS.admin}`,
      ...(spec.mode === undefined ? [] : ['--mode', spec.mode]),
      ...(spec.opaquePorts === undefined ? [] : ['--opaque-ports', spec.opaquePorts]),
      ...spec.probePaths.flatMap((path) => ['--probe-path', path]),
    ],
    env: [
      { name: POD_ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: POD_ENV.serviceAccount, valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
      // Linkerd's way: the anchors travel in the pod spec; later changes come by the identity
      // service's bundle long-poll, without restarting the pod.
      { name: PROXY_ENV.identityBundlePem, value: spec.trustAnchorsPem },
      // The image's entrypoint is `node bin/mutual.js`: the sidecar's Node flags come this way,
      // those Node takes there (SIDECAR_NODE_OPTIONS).
      ...(SIDECAR_NODE_OPTIONS.length === 0
        ? []
        : [{ name: 'NODE_OPTIONS', value: SIDECAR_NODE_OPTIONS.join(' ') }]),
      ...(Object.keys(spec.appProbes).length === 0
        ? []
        : [{ name: PROXY_ENV.appProbes, value: JSON.stringify(spec.appProbes) }]),
      ...labelsEnv(spec.labels),
    ],
    ports: [
      { name: 'mutual-proxy', containerPort: PROXY_PORTS.inbound, protocol: 'TCP' },
      { name: 'mutual-admin', containerPort: PROXY_PORTS.admin, protocol: 'TCP' },
    ],
    // Until the proxy has its certificate the app containers wait (startup), then traffic
    // follows readiness; liveness restarts a proxy that stopped answering.
    startupProbe: adminProbe('/ready', 1, 120),
    readinessProbe: adminProbe('/ready', 5, 3),
    livenessProbe: adminProbe('/live', 10, 3),
    resources: {
      requests: { cpu: resources.cpuRequest, memory: resources.memoryRequest },
      ...(Object.keys(limits).length > 0 ? { limits } : {}),
    },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: VOLUMES.token, mountPath: PROXY_PATHS.tokenDir, readOnly: true },
      { name: VOLUMES.identity, mountPath: PROXY_PATHS.identityDir },
    ],
  };
}

/** KEY=VALUE,… sorted; a label with an empty value cannot be written so and is left out. */
function labelsEnv(labels: Readonly<Record<string, string>>) {
  const pairs = Object.keys(labels)
    .filter((key) => labels[key] !== '')
    .sort()
    .map((key) => `${key}=${labels[key]}`);
  return pairs.length === 0 ? [] : [{ name: PROXY_ENV.labels, value: pairs.join(',') }];
}

export function sidecarVolumes(): IVolume[] {
  return [
    {
      name: VOLUMES.token,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: IDENTITY_TOKEN_AUDIENCE,
              expirationSeconds: TOKEN_EXPIRATION_S,
              path: 'token',
            },
          },
        ],
      },
    },
    // The proxy's key never touches a disk: memory only, and small.
    { name: VOLUMES.identity, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
    { name: VOLUMES.initRun, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ];
}

export const SIDECAR_VOLUME_NAMES: readonly string[] = Object.values(VOLUMES);

/**
 * The sidecar's Node flags that Node accepts in NODE_OPTIONS. Node refuses to start at all when
 * NODE_OPTIONS holds any other ("node: --initial-old-space-size= is not allowed in NODE_OPTIONS",
 * exit 9), which would leave every injected pod's proxy crash-looping and its app never started;
 * the others (given on the command line by `mutual up`) are left out. The injector runs the image
 * the proxy runs, so its Node's list is the proxy's.
 */
export const SIDECAR_NODE_OPTIONS: readonly string[] = SIDECAR_NODE_FLAGS.filter((flag) =>
  process.allowedNodeEnvironmentFlags.has(flag.split('=')[0] ?? flag),
);
