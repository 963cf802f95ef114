// From the cluster's Pods, Services and EndpointSlices to answers (pure: no I/O). A pod address is
// meshed when the pod carries mutual.dev/proxy-injected; its server identity is its
// ServiceAccount. A Service (ClusterIP:port or its DNS name) is meshed when every ready endpoint
// behind that port is, with one identity — the proxy verifies exactly one SPIFFE ID.
import { isIP } from 'node:net';
import { ANNOTATIONS, LABELS } from '../k8s/constants.ts';
import type { KubeObject } from '../k8s/kube-client/index.ts';
import type { DestinationAnswer, DestinationProtocol } from './answer.ts';

export interface Pod extends KubeObject {
  readonly spec?: { readonly serviceAccountName?: string; readonly hostNetwork?: boolean };
  readonly status?: {
    readonly phase?: string;
    readonly podIP?: string;
    readonly podIPs?: readonly { readonly ip?: string }[];
  };
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: string;
}

export interface Service extends KubeObject {
  readonly spec?: {
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[];
    readonly ports?: readonly ServicePort[];
  };
}

export interface EndpointSlice extends KubeObject {
  readonly addressType?: string;
  readonly endpoints?: readonly {
    readonly addresses?: readonly string[];
    readonly conditions?: { readonly ready?: boolean | null };
    readonly targetRef?: { readonly kind?: string; readonly name?: string; readonly namespace?: string };
  }[];
  readonly ports?:
    | readonly { readonly name?: string; readonly port?: number; readonly protocol?: string }[]
    | null;
}

export interface ClusterState {
  readonly pods: Iterable<Pod>;
  readonly services: Iterable<Service>;
  readonly endpointSlices: Iterable<EndpointSlice>;
}

export interface ClusterIndex {
  resolveAddress(address: string, port: number): DestinationAnswer | undefined;
  resolveName(host: string, port: number): DestinationAnswer | undefined;
  readonly counts: { readonly pods: number; readonly services: number; readonly endpointSlices: number };
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export function buildClusterIndex(
  state: ClusterState,
  options: { trustDomain: string; clusterDomain: string },
): ClusterIndex {
  const podsByIp = new Map<string, Pod>();
  const podsByName = new Map<string, Pod>();
  let podCount = 0;
  for (const pod of state.pods) {
    podCount++;
    podsByName.set(`${pod.metadata?.namespace}/${pod.metadata?.name}`, pod);
    // Finished pods give their address back; host-network pods share the node's.
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed' || pod.spec?.hostNetwork)
      continue;
    for (const ip of podAddresses(pod)) podsByIp.set(ip, pod);
  }
  const servicesByIp = new Map<string, Service>();
  const servicesByName = new Map<string, Service>();
  let serviceCount = 0;
  for (const service of state.services) {
    serviceCount++;
    servicesByName.set(`${service.metadata?.namespace}/${service.metadata?.name}`, service);
    const ips = service.spec?.clusterIPs ?? (service.spec?.clusterIP ? [service.spec.clusterIP] : []);
    for (const ip of ips) if (isIP(ip)) servicesByIp.set(ip, service);
  }
  const slicesByService = new Map<string, EndpointSlice[]>();
  let sliceCount = 0;
  for (const slice of state.endpointSlices) {
    sliceCount++;
    const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!serviceName) continue;
    const key = `${slice.metadata?.namespace}/${serviceName}`;
    slicesByService.set(key, [...(slicesByService.get(key) ?? []), slice]);
  }

  function podAnswer(pod: Pod, port: number): DestinationAnswer {
    const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') {
      return { meshed: false, reason: 'not-running', kind: 'pod', name };
    }
    if (pod.spec?.hostNetwork) return { meshed: false, reason: 'host-network', kind: 'pod', name };
    if (!isInjected(pod)) return { meshed: false, reason: 'not-injected', kind: 'pod', name };
    if (portList(pod.metadata?.annotations?.[ANNOTATIONS.skipInboundPorts]).has(port)) {
      return { meshed: false, reason: 'skipped-port', kind: 'pod', name };
    }
    const opaque = portList(pod.metadata?.annotations?.[ANNOTATIONS.opaquePorts]).has(port);
    return {
      meshed: true,
      serverId: `spiffe://${options.trustDomain}/ns/${pod.metadata?.namespace}/sa/${pod.spec?.serviceAccountName || 'default'}`,
      protocol: opaque ? 'opaque' : 'detect',
      kind: 'pod',
      name,
    };
  }

  function serviceAnswer(service: Service, port: number): DestinationAnswer {
    const name = `${service.metadata?.namespace}/${service.metadata?.name}`;
    const servicePort = service.spec?.ports?.find((p) => p.port === port && (p.protocol ?? 'TCP') === 'TCP');
    if (!servicePort) return { meshed: false, reason: 'unknown-port', kind: 'service', name };
    const endpoints: DestinationAnswer[] = [];
    for (const slice of slicesByService.get(name) ?? []) {
      const slicePort = (slice.ports ?? []).find((p) => (p.name ?? '') === (servicePort.name ?? ''));
      if (!slicePort?.port) continue;
      for (const endpoint of slice.endpoints ?? []) {
        if (endpoint.conditions?.ready === false) continue;
        const ref = endpoint.targetRef;
        const pod =
          ref?.kind === 'Pod'
            ? podsByName.get(`${ref.namespace ?? service.metadata?.namespace}/${ref.name}`)
            : podsByIp.get(endpoint.addresses?.[0] ?? '');
        endpoints.push(pod ? podAnswer(pod, slicePort.port) : { meshed: false, reason: 'unknown' });
      }
    }
    if (endpoints.length === 0) return { meshed: false, reason: 'no-endpoints', kind: 'service', name };
    if (endpoints.some((endpoint) => !endpoint.meshed)) {
      return { meshed: false, reason: 'mixed-endpoints', kind: 'service', name };
    }
    const ids = new Set(endpoints.map((endpoint) => endpoint.serverId));
    if (ids.size > 1) return { meshed: false, reason: 'identities-differ', kind: 'service', name };
    const isOpaque =
      endpoints.some((endpoint) => endpoint.protocol === 'opaque') ||
      portList(service.metadata?.annotations?.[ANNOTATIONS.opaquePorts]).has(port);
    const protocol: DestinationProtocol = isOpaque ? 'opaque' : 'detect';
    return { meshed: true, serverId: [...ids][0]!, protocol, kind: 'service', name };
  }

  const serviceSuffix = `.svc.${options.clusterDomain}`;
  return {
    counts: { pods: podCount, services: serviceCount, endpointSlices: sliceCount },
    resolveAddress(address, port) {
      const service = servicesByIp.get(address);
      if (service) return serviceAnswer(service, port);
      const pod = podsByIp.get(address);
      return pod ? podAnswer(pod, port) : undefined;
    },
    resolveName(host, port) {
      // <service>.<namespace>.svc.<cluster-domain>, or <service>.<namespace>.svc
      const trimmed = host.endsWith(serviceSuffix)
        ? host.slice(0, -serviceSuffix.length)
        : host.endsWith('.svc')
          ? host.slice(0, -4)
          : undefined;
      const parts = trimmed?.split('.');
      if (parts?.length !== 2) return undefined;
      const service = servicesByName.get(`${parts[1]}/${parts[0]}`);
      return service ? serviceAnswer(service, port) : undefined;
    },
  };
}

function podAddresses(pod: Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((entry) => entry.ip ?? '').filter((ip) => isIP(ip));
  if (ips.length === 0 && pod.status?.podIP && isIP(pod.status.podIP)) ips.push(pod.status.podIP);
  return ips;
}

function isInjected(pod: Pod): boolean {
  const label = pod.metadata?.labels?.[LABELS.proxyInjected];
  const annotation = pod.metadata?.annotations?.[ANNOTATIONS.injected];
  return (label !== undefined && label !== 'false') || (annotation !== undefined && annotation !== 'false');
}

/** `8080,9000-9002` → the ports; anything unreadable is left out (the injector validates annotations). */
export function portList(text: string | undefined): Set<number> {
  const ports = new Set<number>();
  for (const part of (text ?? '').split(',')) {
    const range = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(part);
    if (!range) continue;
    const low = Number(range[1]);
    const high = Math.min(Number(range[2] ?? range[1]), 65535, low + 65535);
    for (let port = low; port <= high; port++) if (port >= 1) ports.add(port);
  }
  return ports;
}
