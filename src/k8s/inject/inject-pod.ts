// The one injection both paths share (`mutual inject` offline, the admission webhook online): a
// pure function from a pod (or pod template) to the injected pod, or the reason it was left alone.
import { PROXY_ENV } from '../../config/index.ts';
import { parseCertificatesPem } from '../../pki/index.ts';
import { VERSION } from '../../version.ts';
import {
  ANNOTATIONS,
  DEFAULT_IMAGE,
  DEFAULT_TRUST_DOMAIN,
  INJECT_VALUES,
  LABELS,
  PROXY_PORTS,
  PROXY_UID,
} from '../constants.ts';
import { rewriteAppProbes } from './app-probes.ts';
import { type OtherMeshSetting, otherMeshSettings } from './other-mesh-annotations.ts';
import {
  type AnnotationProblem,
  type PeerAuthenticationMode,
  RESOURCE_ANNOTATIONS,
  readPodAnnotations,
} from './pod-annotations.ts';
import {
  DEFAULT_PROXY_RESOURCES,
  type ProxyResourceField,
  type ProxyResources,
  requestOverLimitProblems,
} from './proxy-resources.ts';
import {
  INIT_CONTAINER_NAME,
  initContainer,
  PROXY_CONTAINER_NAME,
  proxyContainer,
  SIDECAR_VOLUME_NAMES,
  sidecarVolumes,
} from './sidecar.ts';

/** What the injector is configured with, but the anchors (a file it watches, or a flag offline). */
export interface InjectDefaults {
  readonly image: string;
  readonly trustDomain: string;
  /** `--mode` for pods without `config.mutual.dev/default-mode`; unset leaves the proxy's default. */
  readonly defaultMode?: PeerAuthenticationMode;
  readonly proxyResources: ProxyResources;
}

export interface InjectOptions extends InjectDefaults {
  /** The mesh's trust anchors, PEM (checked by the caller): written into every proxy's environment. */
  readonly trustAnchorsPem: string;
}

export const DEFAULT_INJECT_OPTIONS: InjectDefaults = {
  image: DEFAULT_IMAGE,
  trustDomain: DEFAULT_TRUST_DOMAIN,
  proxyResources: DEFAULT_PROXY_RESOURCES,
};

export type SkipReason =
  | 'already-injected'
  | 'existing-proxy'
  | 'other-mesh'
  | 'disabled'
  | 'host-network'
  | 'conflict'
  | 'no-containers'
  | 'windows';

/** A pod or pod template: what injection reads and writes (the rest is carried through). */
export interface PodLike {
  metadata?: {
    annotations?: Record<string, unknown> | null;
    labels?: Record<string, unknown> | null;
    [key: string]: unknown;
  } | null;
  spec?: Record<string, unknown> | null;
  [key: string]: unknown;
}

export type InjectOutcome =
  | {
      readonly kind: 'injected';
      readonly pod: PodLike;
      /**
       * `anchors`: the pod was injected already (by `mutual inject`, its template carrying the proxy),
       * and only the trust anchors in the proxy's environment changed to the current ones.
       */
      readonly change?: 'anchors';
      /** Other meshes' settings on the pod that Mutual ignores, each naming Mutual's annotation. */
      readonly notes: readonly OtherMeshSetting[];
    }
  | { readonly kind: 'skipped'; readonly reason: SkipReason; readonly message: string }
  | { readonly kind: 'invalid'; readonly problems: readonly AnnotationProblem[] };

/** Sidecars of other meshes: two proxies fighting over the same iptables would break the pod. */
const OTHER_MESH_CONTAINERS = ['istio-proxy', 'istio-init', 'linkerd-proxy', 'linkerd-init'];

/**
 * What another mesh's injector reads on a pod: its opt-out (a pod someone found breaks with a
 * sidecar) and its opt-in (that injector will add its own proxy when the pod is created, which the
 * template does not show yet). Istio reads its key as an annotation or a label, and any value but
 * y, yes, true, on as "no".
 */
function otherMeshInjection(
  annotations: Readonly<Record<string, unknown>>,
  labels: Readonly<Record<string, unknown>>,
): { decision: 'enabled' | 'disabled'; written: string } | undefined {
  // Linkerd knows enabled, ingress (both inject) and disabled; any other value it ignores, as if
  // the pod said nothing (its namespace's annotation decides).
  const linkerd = annotations['linkerd.io/inject'];
  const linkerdValue = typeof linkerd === 'string' ? linkerd.trim() : '';
  if (['enabled', 'ingress', 'disabled'].includes(linkerdValue)) {
    const decision = linkerdValue === 'disabled' ? 'disabled' : 'enabled';
    return { decision, written: `annotation linkerd.io/inject: ${linkerd}` };
  }
  for (const [where, fields] of [
    ['label', labels],
    ['annotation', annotations],
  ] as const) {
    const istio = fields['sidecar.istio.io/inject'];
    if (typeof istio !== 'string' || istio.trim() === '') continue;
    const isYes = ['y', 'yes', 'true', 'on'].includes(istio.trim().toLowerCase());
    return {
      decision: isYes ? 'enabled' : 'disabled',
      written: `${where} sidecar.istio.io/inject: "${istio}"`,
    };
  }
  // A pod labelled with an Istio revision is injected by that revision's webhook (its
  // objectSelector), in a namespace not labelled for Istio too.
  const revision = labels['istio.io/rev'];
  if (typeof revision === 'string' && revision.trim() !== '') {
    return { decision: 'enabled', written: `label istio.io/rev: ${revision}` };
  }
  return undefined;
}

interface ContainerLike {
  name?: unknown;
  ports?: { containerPort?: unknown }[];
  securityContext?: { runAsUser?: unknown } | null;
}

export function injectPod(pod: PodLike, options: InjectOptions): InjectOutcome {
  const annotations = pod.metadata?.annotations ?? {};
  const spec = pod.spec ?? {};
  const containers = listOf<ContainerLike>(spec.containers);
  const initContainers = listOf<ContainerLike>(spec.initContainers);
  const all = [...initContainers, ...containers];
  const names = new Set(all.map((container) => container.name));
  const skip = (reason: SkipReason, message: string): InjectOutcome => ({ kind: 'skipped', reason, message });
  // Checks in order: ours already there → opted out → cannot be meshed → annotations usable.
  if (names.has(PROXY_CONTAINER_NAME)) {
    if (annotations[ANNOTATIONS.injected] === undefined) {
      return skip(
        'existing-proxy',
        `it already has a container named ${PROXY_CONTAINER_NAME} that Mutual did not inject`,
      );
    }
    return withCurrentAnchors(pod, options.trustAnchorsPem) ?? skip('already-injected', 'already injected');
  }
  const { config, problems } = readPodAnnotations(annotations);
  // The annotation, or else the same key as a label (Istio reads its own key either way).
  const inject = config.inject ?? podInjectLabel(pod.metadata?.labels);
  if (inject === INJECT_VALUES.disabled) {
    const where = config.inject === undefined ? 'label' : 'annotation';
    return skip('disabled', `${where} ${ANNOTATIONS.inject}: ${INJECT_VALUES.disabled}`);
  }
  // Another mesh's opt-out is honoured too (a pod kept out of Istio or Linkerd usually breaks with
  // any sidecar), unless the pod asks for Mutual by name.
  const otherMeshDecision = otherMeshInjection(annotations, pod.metadata?.labels ?? {});
  if (otherMeshDecision?.decision === 'disabled' && inject !== INJECT_VALUES.enabled) {
    return skip(
      'disabled',
      `${otherMeshDecision.written} opts it out of sidecars; annotate it ${ANNOTATIONS.inject}: ${INJECT_VALUES.enabled} to mesh it with Mutual anyway`,
    );
  }
  if (spec.hostNetwork === true) {
    return skip(
      'host-network',
      "hostNetwork: true (the proxy's iptables rules would capture the node's traffic)",
    );
  }
  const windows = windowsSelection(spec);
  if (windows) {
    return skip(
      'windows',
      `${windows}: the proxy and its iptables rules are Linux only (mutual-init could not start on a Windows node, and the pod with it)`,
    );
  }
  const otherMesh = OTHER_MESH_CONTAINERS.find((name) => names.has(name));
  if (otherMesh) {
    const how = otherMesh.startsWith('istio')
      ? "Istio's injector (namespace label istio-injection or istio.io/rev) or istioctl kube-inject added it"
      : "Linkerd's injector (annotation linkerd.io/inject on the namespace or pod) or linkerd inject --manual added it";
    return skip(
      'other-mesh',
      `it already runs another mesh's sidecar (${otherMesh}): ${how}; remove that opt-in, or inject the manifest from before, to mesh it with Mutual`,
    );
  }
  if (otherMeshDecision?.decision === 'enabled') {
    return skip(
      'other-mesh',
      `${otherMeshDecision.written} asks another mesh to add its sidecar when the pod is created, and two proxies would fight over its traffic; remove it to mesh the pod with Mutual`,
    );
  }
  if (containers.length === 0) return skip('no-containers', 'it has no containers');
  const conflict = findConflict(spec, all);
  if (conflict) return skip('conflict', conflict);
  if (problems.length > 0) return { kind: 'invalid', problems };
  // A request above its limit, however the two were set (one by annotation, one by the injector).
  const resources: ProxyResources = { ...options.proxyResources, ...config.resources };
  const isAnnotated = (field: ProxyResourceField) => config.resources[field] !== undefined;
  const overLimit = requestOverLimitProblems(
    resources,
    (request, limit) => (isAnnotated(request) || !isAnnotated(limit) ? request : limit),
    (field) =>
      isAnnotated(field)
        ? RESOURCE_ANNOTATIONS[field]
        : `the injector's default; annotate ${RESOURCE_ANNOTATIONS[field]} to change it`,
  ).map(({ field, message }) => ({ annotation: RESOURCE_ANNOTATIONS[field], message }));
  if (overLimit.length > 0) return { kind: 'invalid', problems: overLimit };

  // The app's HTTP(S) probes go through the proxy's admin port, so STRICT never refuses the kubelet:
  // those of its containers and of its own native sidecars (init containers with restartPolicy
  // Always, started after the proxy; ordinary init containers cannot have probes). A sidecar's
  // readiness counts for the pod's, and its startup probe holds back the containers after it.
  const appProbes = rewriteAppProbes(listOf(spec.containers), config.rewriteAppProbes);
  const sidecarProbes = rewriteAppProbes(listOf(spec.initContainers), config.rewriteAppProbes);
  const probes = {
    probes: { ...appProbes.probes, ...sidecarProbes.probes },
    keptProbePaths: [...new Set([...appProbes.keptProbePaths, ...sidecarProbes.keptProbePaths])],
  };
  const sidecar = {
    image: config.image ?? options.image,
    trustDomain: options.trustDomain,
    trustAnchorsPem: options.trustAnchorsPem,
    appProbes: probes.probes,
    skipInboundPorts: config.skipInboundPorts,
    skipOutboundPorts: config.skipOutboundPorts,
    skipOutboundSubnets: config.skipOutboundSubnets,
    ...(config.opaquePorts === undefined ? {} : { opaquePorts: config.opaquePorts }),
    ...((config.mode ?? options.defaultMode) === undefined
      ? {}
      : { mode: config.mode ?? options.defaultMode }),
    resources,
    probePaths: probes.keptProbePaths,
    labels: Object.fromEntries(
      Object.entries(pod.metadata?.labels ?? {}).filter(
        (entry): entry is [string, string] => typeof entry[1] === 'string',
      ),
    ),
  };
  const injected = structuredClone(pod);
  injected.metadata = {
    ...(injected.metadata ?? {}),
    annotations: {
      ...(injected.metadata?.annotations ?? {}),
      [ANNOTATIONS.inject]: INJECT_VALUES.enabled,
      [ANNOTATIONS.injected]: VERSION,
    },
    labels: { ...(injected.metadata?.labels ?? {}), [LABELS.proxyInjected]: 'true' },
  };
  const injectedSpec = { ...(injected.spec ?? {}) };
  injectedSpec.containers = structuredClone(appProbes.containers);
  // mutual-init first (iptables), then the proxy, then the app's own init containers, which
  // already need the proxy: their traffic is redirected too.
  injectedSpec.initContainers = [
    initContainer(sidecar),
    proxyContainer(sidecar),
    ...structuredClone(sidecarProbes.containers),
  ];
  injectedSpec.volumes = [...listOf(injectedSpec.volumes), ...sidecarVolumes()];
  injected.spec = injectedSpec;
  return { kind: 'injected', pod: injected, notes: otherMeshSettings(annotations) };
}

/**
 * An injected pod whose proxy carries other trust anchors than the mesh's now: a workload injected
 * with `mutual inject` has the proxy in its template, so its pods come to the webhook already
 * injected, and an anchor rotation (restart every workload so its pods carry the new root) would
 * re-create them with the old anchors, whose proxies could no longer trust the identity service
 * once the old root is dropped. The anchors are brought up to date, nothing else: undefined when
 * they are the same (or the proxy has none to replace).
 */
function withCurrentAnchors(pod: PodLike, trustAnchorsPem: string): InjectOutcome | undefined {
  if (trustAnchorsPem.trim() === '') return undefined;
  const spec = pod.spec ?? {};
  for (const field of ['initContainers', 'containers'] as const) {
    const list = listOf<{ name?: unknown; env?: unknown }>(spec[field]);
    const index = list.findIndex((container) => container.name === PROXY_CONTAINER_NAME);
    if (index === -1) continue;
    const env = listOf<{ name?: unknown; value?: unknown }>(list[index]?.env);
    const at = env.findIndex((entry) => entry.name === PROXY_ENV.identityBundlePem);
    const value = env[at]?.value;
    if (typeof value !== 'string' || samePem(value, trustAnchorsPem)) return undefined;
    const injected = structuredClone(pod);
    const container = listOf<{ env: { value?: unknown }[] }>(injected.spec?.[field])[index];
    const entry = container?.env[at];
    if (entry === undefined) return undefined;
    entry.value = trustAnchorsPem;
    return { kind: 'injected', pod: injected, change: 'anchors', notes: [] };
  }
  return undefined;
}

/** Whether two PEM bundles hold the same roots, in whatever order; one that does not parse differs. */
function samePem(a: string, b: string): boolean {
  const normal = (pem: string) => pem.replace(/\r\n/g, '\n').trim();
  if (normal(a) === normal(b)) return true;
  try {
    const roots = (pem: string) =>
      parseCertificatesPem(pem, PROXY_ENV.identityBundlePem)
        .map((certificate) => certificate.fingerprintSha256)
        .sort()
        .join(',');
    return roots(a) === roots(b);
  } catch {
    return false;
  }
}

/**
 * `mutual.dev/inject` written as a pod label (the key namespaces are opted in with, and the way
 * Istio users write `sidecar.istio.io/inject`): read as the annotation would be when no annotation
 * says otherwise; other values are left alone (labels are not checked as annotations are).
 */
export function podInjectLabel(
  labels: Readonly<Record<string, unknown>> | null | undefined,
): 'enabled' | 'disabled' | undefined {
  const value = labels?.[LABELS.inject];
  return value === INJECT_VALUES.enabled || value === INJECT_VALUES.disabled ? value : undefined;
}

/** How the pod asks for a Windows node, if it does: spec.os.name, or the kubernetes.io/os node label. */
function windowsSelection(spec: Record<string, unknown>): string | undefined {
  const os = spec.os as { name?: unknown } | null | undefined;
  if (os?.name === 'windows') return 'spec.os.name: windows';
  const selector = spec.nodeSelector as Record<string, unknown> | null | undefined;
  if (selector?.['kubernetes.io/os'] === 'windows') return 'nodeSelector kubernetes.io/os: windows';
  return undefined;
}

function listOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

/** Names and ports the sidecar needs that the pod already uses. */
function findConflict(spec: Record<string, unknown>, containers: ContainerLike[]): string | undefined {
  const names = new Set(containers.map((container) => container.name));
  if (names.has(INIT_CONTAINER_NAME)) return `it already has a container named ${INIT_CONTAINER_NAME}`;
  const volume = listOf<{ name?: unknown }>(spec.volumes).find((v) =>
    SIDECAR_VOLUME_NAMES.includes(String(v.name)),
  );
  if (volume) return `it already has a volume named ${String(volume.name)}, which the sidecar needs`;
  const reserved = new Set<number>([PROXY_PORTS.inbound, PROXY_PORTS.outbound, PROXY_PORTS.admin]);
  for (const container of containers) {
    for (const port of container.ports ?? []) {
      if (reserved.has(Number(port.containerPort))) {
        return `container ${String(container.name)} listens on port ${String(port.containerPort)}, which the proxy needs (4140, 4143, 4191)`;
      }
    }
  }
  // The iptables rules let the proxy's own uid out unredirected: an app running as that uid would
  // call out in plain text, past the proxy, with nothing to show for it.
  const podUser = (spec.securityContext as { runAsUser?: unknown } | null | undefined)?.runAsUser;
  for (const container of containers) {
    const user = container.securityContext?.runAsUser ?? podUser;
    if (Number(user) === PROXY_UID) {
      return `container ${String(container.name)} runs as uid ${PROXY_UID}, the proxy's, whose traffic the iptables rules let past the proxy (its calls would leave unencrypted); give it another runAsUser`;
    }
  }
  return undefined;
}
