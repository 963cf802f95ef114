// Another mesh's traffic settings on a pod being moved to Mutual (Linkerd's `config.linkerd.io/*`,
// Istio's `traffic.sidecar.istio.io/*` and `sidecar.istio.io/proxy*`): Mutual does not read them,
// so a port kept out of Linkerd's proxy (a database that speaks first, a port the app serves TLS on
// itself) would go through Mutual's unless the pod says so in Mutual's annotation. Each one that has
// a Mutual equivalent, not set on the pod, becomes a note saying which annotation to write.
import { ANNOTATIONS } from '../constants.ts';

/** Other meshes' pod annotations and Mutual's that does the same (same value format but where noted). */
const EQUIVALENTS: readonly { readonly key: string; readonly mesh: string; readonly mutual: string }[] = [
  { key: 'config.linkerd.io/skip-inbound-ports', mesh: 'Linkerd', mutual: ANNOTATIONS.skipInboundPorts },
  { key: 'config.linkerd.io/skip-outbound-ports', mesh: 'Linkerd', mutual: ANNOTATIONS.skipOutboundPorts },
  { key: 'config.linkerd.io/skip-subnets', mesh: 'Linkerd', mutual: ANNOTATIONS.skipOutboundSubnets },
  { key: 'config.linkerd.io/opaque-ports', mesh: 'Linkerd', mutual: ANNOTATIONS.opaquePorts },
  { key: 'config.linkerd.io/proxy-cpu-request', mesh: 'Linkerd', mutual: ANNOTATIONS.proxyCpuRequest },
  { key: 'config.linkerd.io/proxy-cpu-limit', mesh: 'Linkerd', mutual: ANNOTATIONS.proxyCpuLimit },
  { key: 'config.linkerd.io/proxy-memory-request', mesh: 'Linkerd', mutual: ANNOTATIONS.proxyMemoryRequest },
  { key: 'config.linkerd.io/proxy-memory-limit', mesh: 'Linkerd', mutual: ANNOTATIONS.proxyMemoryLimit },
  {
    key: 'traffic.sidecar.istio.io/excludeInboundPorts',
    mesh: 'Istio',
    mutual: ANNOTATIONS.skipInboundPorts,
  },
  {
    key: 'traffic.sidecar.istio.io/excludeOutboundPorts',
    mesh: 'Istio',
    mutual: ANNOTATIONS.skipOutboundPorts,
  },
  {
    key: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
    mesh: 'Istio',
    mutual: ANNOTATIONS.skipOutboundSubnets,
  },
  { key: 'sidecar.istio.io/proxyCPU', mesh: 'Istio', mutual: ANNOTATIONS.proxyCpuRequest },
  { key: 'sidecar.istio.io/proxyCPULimit', mesh: 'Istio', mutual: ANNOTATIONS.proxyCpuLimit },
  { key: 'sidecar.istio.io/proxyMemory', mesh: 'Istio', mutual: ANNOTATIONS.proxyMemoryRequest },
  { key: 'sidecar.istio.io/proxyMemoryLimit', mesh: 'Istio', mutual: ANNOTATIONS.proxyMemoryLimit },
  { key: 'sidecar.istio.io/rewriteAppHTTPProbers', mesh: 'Istio', mutual: ANNOTATIONS.rewriteAppProbes },
];

export interface OtherMeshSetting {
  /** The other mesh's annotation, as written on the pod. */
  readonly annotation: string;
  readonly mutualAnnotation: string;
  readonly message: string;
}

/**
 * The other meshes' settings on a pod that Mutual would ignore, each with Mutual's annotation; on a
 * Namespace (Linkerd applies its config annotations to every pod there), Mutual reads none.
 */
export function otherMeshSettings(
  annotations: Readonly<Record<string, unknown>>,
  where: 'pod' | 'namespace' = 'pod',
): OtherMeshSetting[] {
  const settings: OtherMeshSetting[] = [];
  for (const { key, mesh, mutual } of EQUIVALENTS) {
    const value = annotations[key];
    if (typeof value !== 'string' || value.trim() === '') continue;
    // The pod says what it wants from Mutual already (perhaps on purpose otherwise).
    if (where === 'pod' && annotations[mutual] !== undefined) continue;
    const isProbeSwitch = key === 'sidecar.istio.io/rewriteAppHTTPProbers';
    // Istio reads that one as a boolean (strconv.ParseBool): only its "off" has an equivalent.
    if (isProbeSwitch && !['false', '0', 'f', 'F', 'FALSE', 'False'].includes(value.trim())) continue;
    const written = isProbeSwitch ? 'false' : value.trim();
    settings.push({
      annotation: key,
      mutualAnnotation: mutual,
      message:
        where === 'pod'
          ? `annotation ${key}: ${JSON.stringify(value)} is ${mesh}'s, which Mutual does not read: to keep its effect, annotate the pod template ${mutual}: ${JSON.stringify(written)}`
          : `annotation ${key}: ${JSON.stringify(value)} is ${mesh}'s, for every pod of the namespace; Mutual reads its settings on pods only: to keep its effect, annotate each pod template ${mutual}: ${JSON.stringify(written)}`,
    });
  }
  return settings;
}
