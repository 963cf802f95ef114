// The Kubernetes source: Pods, Services and EndpointSlices (discovery.k8s.io/v1) listed and
// watched across all namespaces, rebuilt into one ClusterIndex after each burst of changes.
import {
  createInformer,
  type Informer,
  type InformerEvent,
  type KubeClient,
} from '../k8s/kube-client/index.ts';
import type { DestinationSource } from './answer.ts';
import {
  buildClusterIndex,
  type ClusterIndex,
  type EndpointSlice,
  type Pod,
  type Service,
} from './cluster-index.ts';

export const KUBERNETES_RESOURCES = {
  pods: '/api/v1/pods',
  services: '/api/v1/services',
  endpointSlices: '/apis/discovery.k8s.io/v1/endpointslices',
} as const;

export type KubernetesResource = keyof typeof KUBERNETES_RESOURCES;

export interface KubernetesSourceDeps {
  readonly client: KubeClient;
  readonly trustDomain: string;
  /** The cluster's DNS domain (default cluster.local) for <service>.<namespace>.svc.<domain>. */
  readonly clusterDomain?: string;
  readonly onInformerEvent?: (resource: KubernetesResource, event: InformerEvent) => void;
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Coalesces bursts of events into one rebuild; default 20 ms. */
  readonly rebuildDelayMs?: number;
}

export function createKubernetesSource(deps: KubernetesSourceDeps): DestinationSource & {
  start(): void;
  readonly index: () => ClusterIndex;
} {
  const listeners = new Set<() => void>();
  const options = { trustDomain: deps.trustDomain, clusterDomain: deps.clusterDomain ?? 'cluster.local' };
  let index = buildClusterIndex({ pods: [], services: [], endpointSlices: [] }, options);
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer ??= setTimeout(rebuild, deps.rebuildDelayMs ?? 20);
  };
  const informer = <T extends object>(resource: KubernetesResource): Informer<T> =>
    createInformer<T>(KUBERNETES_RESOURCES[resource], {
      client: deps.client,
      onChange: schedule,
      ...(deps.onInformerEvent ? { onEvent: (event) => deps.onInformerEvent!(resource, event) } : {}),
      ...(deps.watchTimeoutSeconds ? { watchTimeoutSeconds: deps.watchTimeoutSeconds } : {}),
      ...(deps.backoff ? { backoff: deps.backoff } : {}),
    });
  const pods = informer<Pod>('pods');
  const services = informer<Service>('services');
  const endpointSlices = informer<EndpointSlice>('endpointSlices');
  const informers = { pods, services, endpointSlices };

  function rebuild() {
    timer = undefined;
    index = buildClusterIndex(
      {
        pods: pods.objects.values(),
        services: services.objects.values(),
        endpointSlices: endpointSlices.objects.values(),
      },
      options,
    );
    for (const listener of listeners) listener();
  }

  return {
    name: 'kubernetes',
    index: () => index,
    start() {
      for (const entry of Object.values(informers)) entry.start();
    },
    resolveAddress: (address, port) => index.resolveAddress(address, port),
    resolveName: (host, port) => index.resolveName(host, port),
    notReadyReason() {
      const waiting = Object.entries(informers)
        .filter(([, entry]) => !entry.hasSynced)
        .map(([resource]) => KUBERNETES_RESOURCES[resource as KubernetesResource]);
      if (waiting.length > 0) return `Kubernetes: first list of ${waiting.join(', ')} not done yet`;
      // Listed, but the index has not been rebuilt from the lists yet.
      return timer ? 'Kubernetes: indexing' : undefined;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      clearTimeout(timer);
      for (const entry of Object.values(informers)) entry.close();
    },
  };
}
