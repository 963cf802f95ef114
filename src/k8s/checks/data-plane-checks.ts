// The meshed workloads: which namespaces are labelled for injection, their pods that run without
// the proxy, and injected pods whose trust anchors (written into the proxy's environment by the
// injector) are not the ConfigMap's current ones.
import { PROXY_ENV } from '../../config/index.ts';
import {
  type CheckCategory,
  type CheckResult,
  CheckSkipped,
  fail,
  failOrSkip,
  ok,
  skip,
} from '../../mesh/checks/index.ts';
import { parseCertificatesPem } from '../../pki/index.ts';
import {
  ANNOTATIONS,
  CONTROL_PLANE_NAMESPACE,
  INJECT_VALUES,
  LABELS,
  TRUST_ANCHORS_CONFIG_MAP,
} from '../constants.ts';
import {
  DEFAULT_INJECT_OPTIONS,
  type PodLike as InjectablePod,
  injectPod,
  PROXY_CONTAINER_NAME,
} from '../inject/index.ts';
import { clusterAnchorsPem } from './cluster-ca-checks.ts';
import type { ClusterView } from './cluster-view.ts';

/** Pods listed by name; the rest counted. */
export const MAX_LISTED_PODS = 10;

interface ContainerLike {
  readonly name?: string;
  readonly env?: ReadonlyArray<{ name?: string; value?: string }>;
}
export interface PodLike {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
    readonly ownerReferences?: ReadonlyArray<{ kind?: string; name?: string; controller?: boolean }>;
  };
  readonly spec?: {
    readonly hostNetwork?: boolean;
    readonly containers?: readonly ContainerLike[];
    readonly initContainers?: readonly ContainerLike[];
  };
  readonly status?: { readonly phase?: string };
}
interface NamespaceLike {
  readonly metadata?: {
    readonly name?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
}

/** Istio's or Linkerd's opt-in on a namespace, as its injector reads it; undefined when none. */
function otherMeshOptIn(ns: NamespaceLike): string | undefined {
  const labels = ns.metadata?.labels ?? {};
  if (labels['istio-injection'] === 'enabled') return 'label istio-injection=enabled (Istio)';
  const revision = labels['istio.io/rev'];
  if (revision) return `label istio.io/rev=${revision} (Istio)`;
  const linkerd = ns.metadata?.annotations?.['linkerd.io/inject'];
  if (linkerd === 'enabled' || linkerd === 'ingress')
    return `annotation linkerd.io/inject: ${linkerd} (Linkerd)`;
  return undefined;
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;
const podName = (pod: PodLike) => `${pod.metadata?.namespace}/${pod.metadata?.name}`;
const proxyOf = (pod: PodLike) =>
  [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (container) => container.name === PROXY_CONTAINER_NAME,
  );
const isFinished = (pod: PodLike) => pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';

/**
 * Whether the injector gives this pod the proxy when it is created: the webhook's own decision, so
 * the pods it leaves out on purpose (opted out with mutual.dev/inject or another mesh's opt-out,
 * hostNetwork, another mesh's sidecar, a name or port the sidecar needs) are not reported as missed.
 */
function isMeshedByInjector(pod: PodLike): boolean {
  const outcome = injectPod(pod as InjectablePod, { ...DEFAULT_INJECT_OPTIONS, trustAnchorsPem: '' });
  return outcome.kind !== 'skipped' || outcome.reason === 'already-injected';
}

/** The command that re-creates a pod through its controller (a Deployment's pods come from a ReplicaSet). */
export function restartCommand(pod: PodLike): string {
  const ns = pod.metadata?.namespace;
  const owner = pod.metadata?.ownerReferences?.find((reference) => reference.controller !== false);
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (owner?.kind === 'ReplicaSet' && owner.name && hash && owner.name.endsWith(`-${hash}`)) {
    return `kubectl -n ${ns} rollout restart deploy/${owner.name.slice(0, -hash.length - 1)}`;
  }
  if (owner?.kind === 'StatefulSet' || owner?.kind === 'DaemonSet') {
    return `kubectl -n ${ns} rollout restart ${owner.kind.toLowerCase()}/${owner.name}`;
  }
  // Any other controller (a Job, a ReplicaSet of its own or of an Argo Rollout, a
  // ReplicationController) replaces a deleted pod by itself.
  if (owner?.kind && owner.name) {
    const counted =
      owner.kind === 'Job' ? '; the deleted pod counts as a failure against its backoffLimit' : '';
    return `kubectl -n ${ns} delete pod ${pod.metadata?.name} (its ${owner.kind} ${owner.name} creates another${counted})`;
  }
  return `kubectl -n ${ns} delete pod ${pod.metadata?.name}, then create it again (it has no controller that would)`;
}

/** At most MAX_LISTED_PODS failures, then one line saying how many more. */
function capped(failures: CheckResult[], what: string): CheckResult[] {
  if (failures.length <= MAX_LISTED_PODS) return failures;
  const more = failures.length - MAX_LISTED_PODS;
  return [...failures.slice(0, MAX_LISTED_PODS), fail(`… and ${more} more ${what}${more === 1 ? '' : 's'}`)];
}

async function injectionNamespaces(view: ClusterView): Promise<string[]> {
  return (await injectionNamespaceObjects(view)).map((ns) => ns.metadata?.name ?? '').sort();
}

async function injectionNamespaceObjects(view: ClusterView): Promise<NamespaceLike[]> {
  const namespaces = await view.list<NamespaceLike>('/api/v1/namespaces');
  return namespaces.filter((ns) => ns.metadata?.labels?.[LABELS.inject] === INJECT_VALUES.enabled);
}

/** The Pod Security admission label that refuses pods (warn and audit only report). */
const POD_SECURITY_ENFORCE = 'pod-security.kubernetes.io/enforce';

const allPods = (view: ClusterView) => view.list<PodLike>('/api/v1/pods');

const fingerprints = (pem: string, source: string) =>
  new Set(parseCertificatesPem(pem, source).map((certificate) => certificate.fingerprintSha256));

/** How a pod's anchors differ from the ConfigMap's, or undefined when they are the same roots. */
function anchorsDifference(pod: PodLike, current: ReadonlySet<string>): string | undefined {
  const value = proxyOf(pod)?.env?.find((entry) => entry.name === PROXY_ENV.identityBundlePem)?.value;
  if (!value) return `its ${PROXY_CONTAINER_NAME} container has no ${PROXY_ENV.identityBundlePem}`;
  let own: Set<string>;
  try {
    own = fingerprints(value, PROXY_ENV.identityBundlePem);
  } catch (error) {
    return `its ${PROXY_ENV.identityBundlePem} is not PEM certificates: ${(error as Error).message}`;
  }
  const missing = [...current].filter((fingerprint) => !own.has(fingerprint)).length;
  const extra = [...own].filter((fingerprint) => !current.has(fingerprint)).length;
  if (missing === 0 && extra === 0) return undefined;
  const parts = [
    ...(missing > 0 ? [`lacks ${plural(missing, 'root')} the ConfigMap has`] : []),
    ...(extra > 0 ? [`still trusts ${plural(extra, 'root')} the ConfigMap no longer has`] : []),
  ];
  return `its anchors are not the ConfigMap's: it ${parts.join(' and ')}`;
}

export function dataPlaneChecks(view: ClusterView): CheckCategory {
  return {
    name: 'kubernetes data plane',
    checks: [
      {
        description: 'namespaces labelled for injection',
        hint: 'pods created in these namespaces get the proxy',
        fix: `label one: \`kubectl label namespace NAMESPACE ${LABELS.inject}=${INJECT_VALUES.enabled}\``,
        severity: 'info',
        async run() {
          try {
            const names = await injectionNamespaces(view);
            return ok(
              names.length > 0
                ? names.join(', ')
                : `none (label one: kubectl label namespace NAMESPACE ${LABELS.inject}=${INJECT_VALUES.enabled})`,
            );
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'injection namespaces are not opted into Istio or Linkerd too',
        hint: "both injectors act on each new pod there: it ends with the other mesh's sidecar only (Mutual leaves such a pod alone) or with two proxies fighting over its traffic",
        fix: "remove the other mesh's opt-in with the command shown, then restart the namespace's workloads",
        severity: 'warning',
        async run() {
          try {
            const namespaces = await injectionNamespaceObjects(view);
            if (namespaces.length === 0) return skip('no namespace is labelled for injection');
            const both = namespaces
              .map((ns) => ({ name: ns.metadata?.name ?? '', other: otherMeshOptIn(ns) }))
              .filter((entry): entry is { name: string; other: string } => entry.other !== undefined)
              .sort((a, b) => a.name.localeCompare(b.name));
            if (both.length === 0) return ok(plural(namespaces.length, 'namespace'));
            return both.map(({ name, other }) => {
              const key = other.split(/[ =:]/)[1] ?? '';
              const remove = other.startsWith('label')
                ? `kubectl label namespace ${name} ${key}-`
                : `kubectl annotate namespace ${name} ${key}-`;
              return fail(`also opted in by ${other}`, name, [`fix: ${remove}`]);
            });
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: "injection namespaces admit mutual-init's NET_ADMIN and NET_RAW",
        hint: "Pod Security's baseline and restricted levels refuse those capabilities, so the API server refuses every injected pod there: its Deployment, Job … cannot create any",
        fix: 'let the namespace run privileged pods with the command shown (as Istio and Linkerd init containers need too), or stop injecting it',
        severity: 'error',
        async run() {
          try {
            const namespaces = await injectionNamespaceObjects(view);
            if (namespaces.length === 0) return skip('no namespace is labelled for injection');
            const refusing = namespaces
              .map((ns) => ({
                name: ns.metadata?.name ?? '',
                level: ns.metadata?.labels?.[POD_SECURITY_ENFORCE],
              }))
              .filter(({ level }) => level === 'baseline' || level === 'restricted')
              .sort((a, b) => a.name.localeCompare(b.name));
            if (refusing.length === 0) return ok(plural(namespaces.length, 'namespace'));
            return refusing.map(({ name, level }) =>
              fail(`${POD_SECURITY_ENFORCE}: ${level} refuses every injected pod`, name, [
                `fix: kubectl label namespace ${name} ${POD_SECURITY_ENFORCE}=privileged --overwrite`,
              ]),
            );
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: 'pods opted into injection run the proxy',
        hint: 'a pod without the proxy is outside the mesh: it has no identity, and STRICT peers refuse its connections',
        fix: 're-create each with the command shown (the injector only sees new pods; under failurePolicy Ignore, pods created while it was unreachable start without the proxy); if new pods still come without the proxy, see the webhook checks',
        severity: 'error',
        async run() {
          try {
            const namespaces = new Set(await injectionNamespaces(view));
            // The pods the webhook injects: those of labelled namespaces, and elsewhere those opted
            // in one by one (annotation, or the same key as a label), never the two namespaces it
            // is not called for.
            const isOptedIn = (pod: PodLike) => {
              const ns = pod.metadata?.namespace ?? '';
              if (ns === CONTROL_PLANE_NAMESPACE || ns === 'kube-system') return false;
              if (namespaces.has(ns)) return true;
              const annotation = pod.metadata?.annotations?.[ANNOTATIONS.inject];
              return (annotation ?? pod.metadata?.labels?.[LABELS.inject]) === INJECT_VALUES.enabled;
            };
            const pods = await allPods(view);
            const optedIn = pods.filter(isOptedIn);
            if (namespaces.size === 0 && optedIn.length === 0) {
              return skip('no namespace is labelled for injection and no pod is annotated for it');
            }
            // Pods the injector would have given the proxy had it seen them being created.
            const expected = optedIn.filter(
              (pod) => !isFinished(pod) && (proxyOf(pod) !== undefined || isMeshedByInjector(pod)),
            );
            const uninjected = expected.filter((pod) => !proxyOf(pod));
            if (uninjected.length === 0) return ok(plural(expected.length, 'pod'));
            return capped(
              uninjected
                .sort((a, b) => podName(a).localeCompare(podName(b)))
                .map((pod) =>
                  fail(`no ${PROXY_CONTAINER_NAME} container`, podName(pod), [`fix: ${restartCommand(pod)}`]),
                ),
              'pod',
            );
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
      {
        description: "injected pods carry the ConfigMap's trust anchors",
        hint: "a running proxy follows the identity service's bundle, but a restarted one starts from the anchors in its pod's environment: without the current roots it cannot trust the identity service",
        fix: 're-create each with the command shown, so the injector writes the current anchors (during an anchor rotation: before switching the issuer)',
        severity: 'warning',
        async run() {
          let current: Set<string>;
          try {
            current = fingerprints(await clusterAnchorsPem(view), TRUST_ANCHORS_CONFIG_MAP.name);
          } catch (error) {
            if (error instanceof CheckSkipped) return skip(error.message);
            return skip('the trust anchors ConfigMap cannot be read (see the trust anchor checks)');
          }
          try {
            const injected = (await allPods(view)).filter((pod) => proxyOf(pod) && !isFinished(pod));
            if (injected.length === 0) return ok('no injected pods');
            const stale = injected
              .map((pod) => ({ pod, difference: anchorsDifference(pod, current) }))
              .filter((entry) => entry.difference !== undefined)
              .sort((a, b) => podName(a.pod).localeCompare(podName(b.pod)));
            if (stale.length === 0) return ok(plural(injected.length, 'pod'));
            return capped(
              stale.map(({ pod, difference }) =>
                fail(difference!, podName(pod), [`fix: ${restartCommand(pod)}`]),
              ),
              'pod',
            );
          } catch (error) {
            return failOrSkip(error);
          }
        },
      },
    ],
  };
}
