import { join } from 'node:path';
import {
  DEFAULT_ADMIN_PORT,
  DEFAULT_INBOUND_PORT,
  DEFAULT_OUTBOUND_PORT,
  DEFAULT_PROXY_UID,
} from '../../proxy/intercept/index.ts';
import { sidecarProbeEnv } from '../app-liveness.ts';
import type { MeshConfig } from '../mesh-config.ts';
import {
  appEnvironment,
  destinationPlan,
  identityPlan,
  identityRateBurst,
  type MeshPlan,
  type ServicePlan,
  sidecarCommand,
  spiffeIdOf,
  workloadProxyFlags,
} from '../plan.ts';
import type { MeshPaths } from '../runtime.ts';
import { inNamespace } from './namespaces.ts';
import type { PodRecord } from './pod.ts';

/** The proxy's uid in every pod: proxy-init lets this uid's traffic out without interception. */
export const PROXY_UID = DEFAULT_PROXY_UID;
/**
 * The uid and gid of an app in a pod of an older network record, and the uid `up` checks a
 * project's directories as before anything starts (one that owns nothing, as each pod's does).
 */
export const APP_UID = 2103;
/** The first of the apps' uids: each pod's app has its own, APP_UID_BASE + subnet * 256 + pod. */
export const APP_UID_BASE = 2_300_000;

/**
 * The uid (and gid) the app of the pod at `podIndex` on subnet `subnetIndex` runs as: not root,
 * not the proxy, and no other pod's, on this machine's meshes (as a pod's processes are out of
 * another's reach in Kubernetes: shared, one app could kill, read or ptrace another's).
 */
export function podAppUid(subnetIndex: number, podIndex: number): number {
  return APP_UID_BASE + subnetIndex * 256 + podIndex;
}

/** The ports the sidecar holds in every pod: an app cannot listen on them there. */
export const POD_SIDECAR_PORTS: ReadonlyMap<number, string> = new Map([
  [DEFAULT_INBOUND_PORT, 'inbound (0.0.0.0)'],
  [DEFAULT_OUTBOUND_PORT, 'outbound (127.0.0.1)'],
  [DEFAULT_ADMIN_PORT, 'admin (0.0.0.0)'],
]);

/**
 * Why a service cannot declare `port` in a netns pod, or undefined. The app listens on the
 * declared port itself, beside its sidecar: on one of the sidecar's ports it fails to bind, and
 * the sidecar's own socket would pass for the app's.
 */
export function podPortProblem(port: number): string | undefined {
  const sidecar = POD_SIDECAR_PORTS.get(port);
  if (sidecar === undefined) return undefined;
  return `port ${port} is the sidecar's ${sidecar} port in every pod of a netns mesh, so the app cannot listen on it; give the app another port (the ports ${[...POD_SIDECAR_PORTS.keys()].join(', ')} are taken), or use --isolation loopback, where each app gets a $PORT of its own`;
}

/**
 * Decides every address of a netns mesh. Each service is a pod: its app listens on its declared
 * port on 127.0.0.1 and calls upstreams by name (<NAME>_URL = http://name:port, resolved by the
 * pod's /etc/hosts); proxy-init's rules send both directions through the sidecar (uid 2102,
 * transparent listeners 4143 / 4140, admin on the pod address for the host). The identity and
 * destination services listen on the host's end of the mesh network; the transparent outbound
 * asks the destination service (`--destination-url`) whether an address is meshed and as whom.
 * Pure.
 */
export function planNetnsMesh(options: {
  config: MeshConfig;
  paths: MeshPaths;
  pods: (service: string) => PodRecord;
  hostAddress: string;
  identityPorts: { api: number; admin: number };
  destinationPorts: { api: number; admin: number };
  nodePath: string;
  mutualBin: string;
  baseEnv: Readonly<Record<string, string | undefined>>;
}): MeshPlan {
  const { config, paths } = options;
  const mutual = [options.nodePath, options.mutualBin];
  const identity = identityPlan({
    paths,
    mutual,
    host: options.hostAddress,
    apiPort: options.identityPorts.api,
    adminPort: options.identityPorts.admin,
    certificateLifetime: config.certificateLifetime,
    rateBurst: identityRateBurst(config),
  });
  const destination = destinationPlan({
    paths,
    mutual,
    trustDomain: config.trustDomain,
    identityApiUrl: identity.apiUrl,
    host: options.hostAddress,
    apiPort: options.destinationPorts.api,
    adminPort: options.destinationPorts.admin,
    policyDir: config.policyDir,
  });
  const services = config.services.map((service): ServicePlan => {
    const pod = options.pods(service.name);
    const spiffeId = spiffeIdOf(config, service);
    const ports = service.ports.map(({ port, protocol }) => ({
      port,
      protocol,
      appPort: port,
      inboundPort: service.skipInboundPorts.includes(port) ? undefined : DEFAULT_INBOUND_PORT,
    }));
    const upstreams = service.upstreams.map((upstream) => ({
      ...upstream,
      localAddress: `${upstream.service}:${upstream.port}`,
    }));
    const tokenFile = join(pod.dir, 'token');
    const identityBundle = join(pod.dir, 'bundle.pem');
    const env = appEnvironment({
      service,
      spiffeId,
      nodePath: options.nodePath,
      // The app is not root: a HOME of its own, not root's (mesh.yaml's env may still set one).
      baseEnv: pod.home === undefined ? options.baseEnv : { ...options.baseEnv, HOME: pod.home },
      listenPorts: ports,
      upstreams,
    });
    const proxyArgv = [
      ...sidecarCommand(options.nodePath, options.mutualBin),
      ...['proxy', 'run', '--identity-url', identity.apiUrl, '--token-file', tokenFile],
      ...['--spiffe-id', spiffeId, '--identity-bundle', identityBundle],
      ...['--inbound-listen', `0.0.0.0:${DEFAULT_INBOUND_PORT}`],
      ...['--outbound-listen', `127.0.0.1:${DEFAULT_OUTBOUND_PORT}`],
      ...['--admin-listen', `0.0.0.0:${DEFAULT_ADMIN_PORT}`],
      ...['--destination-url', destination.apiUrl],
      ...workloadProxyFlags(config, service),
    ];
    return {
      service,
      spiffeId,
      tokenFile,
      ports,
      upstreams,
      adminPort: DEFAULT_ADMIN_PORT,
      adminUrl: `http://${pod.address}:${DEFAULT_ADMIN_PORT}`,
      identityBundle,
      pod: { netns: pod.netns, address: pod.address, proxyGid: pod.proxyGid },
      app: {
        argv: inNamespace(pod.netns, service.command, { uid: pod.appUid ?? APP_UID }),
        env,
        cwd: service.cwd,
        log: join(paths.logsDir, `${service.name}.log`),
        logOwner: { uid: pod.appUid ?? APP_UID, gid: pod.appUid ?? APP_UID },
      },
      proxy: {
        argv: inNamespace(pod.netns, proxyArgv, { uid: PROXY_UID, gid: pod.proxyGid }),
        log: join(paths.logsDir, `${service.name}.proxy.log`),
        // In the environment, not argv: a probe's httpHeaders may be credentials, and argv is public.
        ...(service.livenessProbe ? { env: sidecarProbeEnv(service.name, service.livenessProbe) } : {}),
      },
    };
  });
  return { identity, destination, services };
}
