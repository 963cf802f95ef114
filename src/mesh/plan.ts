import { delimiter, dirname, join } from 'node:path';
import { DEFAULT_OPAQUE_PORTS, SIDECAR_NODE_FLAGS } from '../config/index.ts';
import { DEFAULT_RATE_LIMIT } from '../identity/index.ts';
import type { MeshConfig, MeshService } from './mesh-config.ts';
import type { MeshPaths } from './runtime.ts';

/** How one service is started: its app and its sidecar, with every address decided. */
export interface ServicePlan {
  readonly service: MeshService;
  readonly spiffeId: string;
  readonly tokenFile: string;
  readonly ports: ReadonlyArray<{
    port: number;
    protocol: 'http' | 'tcp';
    appPort: number;
    inboundPort: number | undefined;
  }>;
  readonly upstreams: ReadonlyArray<{ service: string; port: number; env: string; localAddress: string }>;
  readonly adminPort: number;
  /** Where the host reaches the sidecar's admin endpoint (/ready, /metrics, /identity). */
  readonly adminUrl: string;
  /** The trust bundle the sidecar verifies the identity service with. */
  readonly identityBundle: string;
  /** netns mode: the pod the app and sidecar run in; the proxy reads its files as group proxyGid. */
  readonly pod?: { netns: string; address: string; proxyGid: number };
  readonly app: {
    argv: readonly string[];
    env: Readonly<Record<string, string>>;
    cwd: string;
    log: string;
    /** netns mode: the app's uid and gid, who owns its log (so it may open /dev/stdout again). */
    logOwner?: { uid: number; gid: number };
  };
  /** `env`: set for the sidecar over up's own environment (netns: the app's livenessProbe for its admin port). */
  readonly proxy: { argv: readonly string[]; log: string; env?: Readonly<Record<string, string>> };
}

export interface MeshPlan {
  readonly identity: {
    apiPort: number;
    adminPort: number;
    apiUrl: string;
    adminUrl: string;
    argv: readonly string[];
    log: string;
  };
  readonly destination: DestinationPlan;
  readonly services: readonly ServicePlan[];
}

/** `mutual destination serve` for the mesh: the table file it watches, its certificate from the identity service. */
export interface DestinationPlan {
  readonly apiUrl: string;
  readonly adminUrl: string;
  readonly serverId: string;
  /** Its join token (for spiffe://<td>/ns/mutual-system/sa/destination), minted with the services'. */
  readonly tokenFile: string;
  readonly tableFile: string;
  readonly argv: readonly string[];
  readonly log: string;
}

export function spiffeIdOf(config: MeshConfig, service: MeshService): string {
  return `spiffe://${config.trustDomain}/ns/${service.namespace}/sa/${service.serviceAccount}`;
}

/** An app's PATH unless its env sets one: `node` in a command is the Node that runs mutual (24), not whatever is first on PATH. */
export function defaultAppPath(nodePath: string, basePath: string | undefined): string {
  return [dirname(nodePath), basePath].filter(Boolean).join(delimiter);
}

/**
 * The environment of an app: the base environment, `node` resolving to the Node that runs
 * mutual, MUTUAL_SERVICE / MUTUAL_SPIFFE_ID, PORT and PORT_<declared> (where to listen),
 * <UPSTREAM>_ADDR / _URL (where to call), then the service's own `env:`.
 */
export function appEnvironment(options: {
  service: MeshService;
  spiffeId: string;
  nodePath: string;
  baseEnv: Readonly<Record<string, string | undefined>>;
  listenPorts: ReadonlyArray<{ port: number; appPort: number }>;
  upstreams: ReadonlyArray<{ env: string; localAddress: string }>;
}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.baseEnv)) if (value !== undefined) env[key] = value;
  env.PATH = defaultAppPath(options.nodePath, env.PATH);
  env.MUTUAL_SERVICE = options.service.name;
  env.MUTUAL_SPIFFE_ID = options.spiffeId;
  if (options.listenPorts[0]) env.PORT = String(options.listenPorts[0].appPort);
  for (const port of options.listenPorts) env[`PORT_${port.port}`] = String(port.appPort);
  for (const upstream of options.upstreams) {
    env[`${upstream.env}_ADDR`] = upstream.localAddress;
    env[`${upstream.env}_URL`] = `http://${upstream.localAddress}`;
  }
  return Object.assign(env, options.service.env);
}

/** `node <sidecar flags> bin/mutual.js`: how every sidecar of the mesh is started. */
export function sidecarCommand(nodePath: string, mutualBin: string): string[] {
  return [nodePath, ...SIDECAR_NODE_FLAGS, mutualBin];
}

/**
 * Whether a service's declared port is opaque (no protocol detection): its own `opaquePorts`, or
 * the default server-speaks-first ports (MySQL, Postgres, Redis ...) when it declares none, as
 * Linkerd's annotation replaces its default list.
 */
export function isOpaquePort(service: MeshService, port: number): boolean {
  return (service.opaquePorts.length > 0 ? service.opaquePorts : DEFAULT_OPAQUE_PORTS).includes(port);
}

/**
 * Sidecar flags that come from mesh.yaml alone: policy, namespace, labels, port options.
 * `opaquePorts`: the ports the sidecar itself sees as opaque, when they are not the declared ones
 * (loopback mode: the app's and the upstreams' ports are allocated, not the declared numbers).
 */
export function workloadProxyFlags(
  config: MeshConfig,
  service: MeshService,
  opaquePorts: readonly number[] = service.opaquePorts,
): string[] {
  return [
    ...(config.policyDir === undefined ? ['--mode', config.mode] : ['--policy-dir', config.policyDir]),
    ...['--namespace', service.namespace],
    ...Object.entries(service.labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]),
    ...(opaquePorts.length > 0 ? ['--opaque-ports', opaquePorts.join(',')] : []),
    ...(service.skipInboundPorts.length > 0
      ? ['--skip-inbound-ports', service.skipInboundPorts.join(',')]
      : []),
  ];
}

/** `mutual identity serve` for the mesh, listening on `host`. */
export function identityPlan(options: {
  paths: MeshPaths;
  mutual: readonly string[];
  host: string;
  apiPort: number;
  adminPort: number;
  /** Lifetime of the workload certificates it signs (mesh.yaml's certificateLifetime). */
  certificateLifetime: string;
  /** --rate-burst, when the default is too small for the mesh (identityRateBurst). */
  rateBurst?: number | undefined;
}): MeshPlan['identity'] {
  const { paths, host, apiPort, adminPort } = options;
  return {
    apiPort,
    adminPort,
    apiUrl: `https://${host}:${apiPort}`,
    adminUrl: `http://${host}:${adminPort}`,
    argv: [
      ...options.mutual,
      ...['identity', 'serve', '--ca', paths.caDir, '--state-dir', paths.stateDir],
      ...['--listen', `${host}:${apiPort}`, '--admin-listen', `${host}:${adminPort}`],
      ...(options.rateBurst === undefined ? [] : ['--rate-burst', String(options.rateBurst)]),
      ...['--lifetime', options.certificateLifetime],
    ],
    log: join(paths.logsDir, 'identity.log'),
  };
}

/**
 * The identity service's --rate-burst for this mesh, when its default is too small: the sidecars
 * of services sharing a service account certify as one identity, all at once when the mesh
 * starts (and renew together after). 40 services sharing one took a mesh 23.5 s to start instead
 * of ~13 s, 45 requests refused for the rate limit (burst 20, 2 a second) and retried, with
 * nothing said. Twice the most services on one identity: a start and a restart of them all.
 */
export function identityRateBurst(config: MeshConfig): number | undefined {
  const sharing = new Map<string, number>();
  for (const service of config.services) {
    const key = `${service.namespace}/${service.serviceAccount}`;
    sharing.set(key, (sharing.get(key) ?? 0) + 1);
  }
  const burst = 2 * Math.max(0, ...sharing.values());
  return burst > DEFAULT_RATE_LIMIT.burst ? burst : undefined;
}

/** The destination service's identity: its join token is for this namespace and service account. */
export const DESTINATION_ACCOUNT = { namespace: 'mutual-system', serviceAccount: 'destination' } as const;

/**
 * `mutual destination serve` for the mesh, listening on `host`: it answers from the table file
 * `mutual up` writes, with a certificate (and renewals) from the identity service like a sidecar.
 */
export function destinationPlan(options: {
  paths: MeshPaths;
  mutual: readonly string[];
  trustDomain: string;
  identityApiUrl: string;
  host: string;
  apiPort: number;
  adminPort: number;
  /** mesh.yaml's policyDir: served at GET /v1/policies (without it, that answers 404). */
  policyDir: string | undefined;
}): DestinationPlan {
  const { paths, host, apiPort, adminPort } = options;
  const { namespace, serviceAccount } = DESTINATION_ACCOUNT;
  // Service names are DNS labels (no dots), so no service's token file can be this one.
  const tokenFile = join(paths.tokensDir, `${namespace}.${serviceAccount}.token`);
  return {
    apiUrl: `https://${host}:${apiPort}`,
    adminUrl: `http://${host}:${adminPort}`,
    serverId: `spiffe://${options.trustDomain}/ns/${namespace}/sa/${serviceAccount}`,
    tokenFile,
    tableFile: paths.destinationTable,
    argv: [
      ...options.mutual,
      ...['destination', 'serve', '--file', paths.destinationTable],
      ...['--listen', `${host}:${apiPort}`, '--admin-listen', `${host}:${adminPort}`],
      ...['--trust-domain', options.trustDomain, '--identity-url', options.identityApiUrl],
      ...['--token-file', tokenFile, '--identity-bundle', paths.bundle],
      ...(options.policyDir === undefined ? [] : ['--policy-dir', options.policyDir]),
    ],
    log: join(paths.logsDir, 'destination.log'),
  };
}

/** How many loopback ports `planMesh` takes from `nextPort`. */
export function portsNeeded(config: MeshConfig): number {
  let count = 4;
  for (const service of config.services) {
    count += 1 + service.upstreams.length;
    for (const { port } of service.ports) count += service.skipInboundPorts.includes(port) ? 1 : 2;
  }
  return count;
}

/**
 * Decides every address of a loopback mesh. Each app listens on its own port on 127.0.0.1
 * (given as PORT); its sidecar takes mTLS for it on another; each upstream is a local port the
 * app calls in plain text (given as <NAME>_ADDR and <NAME>_URL), which the sidecar carries over
 * mTLS to the destination's sidecar, requiring the destination's SPIFFE ID. Pure.
 */
export function planMesh(options: {
  config: MeshConfig;
  paths: MeshPaths;
  ports: readonly number[];
  /** The Node binary and `bin/mutual.js`, to start the identity service and the proxies. */
  nodePath: string;
  mutualBin: string;
  /** Environment every app inherits (PATH, HOME ...). */
  baseEnv: Readonly<Record<string, string | undefined>>;
}): MeshPlan {
  const { config, paths } = options;
  let next = 0;
  const take = () => {
    const port = options.ports[next++];
    if (port === undefined) throw new Error(`planMesh needs ${portsNeeded(config)} ports`);
    return port;
  };
  const mutual = [options.nodePath, options.mutualBin];
  const identity = identityPlan({
    paths,
    mutual,
    host: '127.0.0.1',
    apiPort: take(),
    adminPort: take(),
    certificateLifetime: config.certificateLifetime,
    rateBurst: identityRateBurst(config),
  });
  const destination = destinationPlan({
    paths,
    mutual,
    trustDomain: config.trustDomain,
    identityApiUrl: identity.apiUrl,
    host: '127.0.0.1',
    apiPort: take(),
    adminPort: take(),
    policyDir: config.policyDir,
  });
  const idOf = (service: MeshService) => spiffeIdOf(config, service);
  // First every service's own ports, so upstreams can point at them.
  const own = new Map(
    config.services.map((service) => [
      service.name,
      {
        adminPort: take(),
        ports: service.ports.map(({ port, protocol }) => ({
          port,
          protocol,
          appPort: take(),
          inboundPort: service.skipInboundPorts.includes(port) ? undefined : take(),
        })),
      },
    ]),
  );
  const services = config.services.map((service): ServicePlan => {
    const { adminPort, ports } = own.get(service.name)!;
    const upstreams = service.upstreams.map((upstream) => {
      const target = own.get(upstream.service)!.ports.find((port) => port.port === upstream.port)!;
      const targetService = config.services.find((candidate) => candidate.name === upstream.service)!;
      const localPort = target.inboundPort === undefined ? target.appPort : take();
      return {
        ...upstream,
        localAddress: `127.0.0.1:${localPort}`,
        opaqueLocalPort:
          target.inboundPort !== undefined && isOpaquePort(targetService, upstream.port)
            ? localPort
            : undefined,
        // Skipped ports are reached directly, in plain text, as proxy-init would let them through.
        target:
          target.inboundPort === undefined
            ? undefined
            : `${idOf(targetService)}@127.0.0.1:${target.inboundPort}`,
      };
    });
    const spiffeId = idOf(service);
    const tokenFile = join(paths.tokensDir, `${service.name}.token`);
    const appEnv = appEnvironment({
      service,
      spiffeId,
      nodePath: options.nodePath,
      baseEnv: options.baseEnv,
      listenPorts: ports,
      upstreams,
    });
    const proxyArgv = [
      ...sidecarCommand(options.nodePath, options.mutualBin),
      ...['proxy', 'run', '--identity-url', identity.apiUrl, '--token-file', tokenFile],
      ...['--spiffe-id', spiffeId, '--identity-bundle', paths.bundle],
      ...['--inbound-listen', 'off', '--outbound-listen', 'off'],
      ...['--admin-listen', `127.0.0.1:${adminPort}`],
      ...ports.flatMap((port) =>
        port.inboundPort === undefined ? [] : ['--inbound', `127.0.0.1:${port.inboundPort}=${port.appPort}`],
      ),
      // Policies name mesh.yaml's ports (as Istio's name the container's), not the allocated ones.
      ...ports.flatMap((port) =>
        port.inboundPort === undefined ? [] : ['--policy-port', `${port.appPort}=${port.port}`],
      ),
      ...upstreams.flatMap((upstream) =>
        upstream.target === undefined ? [] : ['--upstream', `${upstream.localAddress}=${upstream.target}`],
      ),
      // The sidecar sees allocated ports, not the declared ones: the app's port behind each opaque
      // inbound, and the local port of each upstream whose destination port is opaque.
      ...workloadProxyFlags(config, service, [
        ...ports
          .filter((port) => port.inboundPort !== undefined && isOpaquePort(service, port.port))
          .map((port) => port.appPort),
        ...upstreams.flatMap((upstream) =>
          upstream.opaqueLocalPort === undefined ? [] : [upstream.opaqueLocalPort],
        ),
      ]),
    ];
    return {
      service,
      spiffeId,
      tokenFile,
      ports,
      upstreams: upstreams.map(({ target: _target, opaqueLocalPort: _opaque, ...upstream }) => upstream),
      adminPort,
      adminUrl: `http://127.0.0.1:${adminPort}`,
      identityBundle: paths.bundle,
      app: {
        argv: service.command,
        env: appEnv,
        cwd: service.cwd,
        log: join(paths.logsDir, `${service.name}.log`),
      },
      proxy: { argv: proxyArgv, log: join(paths.logsDir, `${service.name}.proxy.log`) },
    };
  });
  return { identity, destination, services };
}
