// The cluster's policies: PeerAuthentication and AuthorizationPolicy listed and watched across
// all namespaces in security.mutual.dev/v1 and, when their CRDs are installed, Istio's
// security.istio.io/v1 and v1beta1. Each object goes through src/policy's parser; an invalid one
// is skipped (logged once, counted) and never keeps the others from applying; one that uses only
// what Mutual cannot enforce (JWT, CUSTOM, ...) is enforced stricter instead (logged, counted). A 404 on a list
// means the CRD is absent: logged once, asked again with the informer's backoff.

import { CONTROL_PLANE_NAMESPACE } from '../k8s/constants.ts';
import {
  createInformer,
  type Informer,
  type InformerEvent,
  type KubeClient,
  type KubeObject,
  objectKey,
} from '../k8s/kube-client/index.ts';
import {
  failClosedPolicy,
  formatDiagnostic,
  invalidPolicyStandIn,
  type PolicyDiagnostic,
  parsePolicyObject,
} from '../policy/index.ts';
import type { PolicyDocument, PolicySource, ServedPolicy, SkippedPolicy } from './policy-source.ts';

type PolicyKindName = PolicyDocument['kind'];

/** One collection: a group/version and kind; earlier entries win over later ones for the same kind and namespace/name. */
export interface PolicyCollection {
  readonly apiVersion: string;
  readonly kind: PolicyKindName;
  readonly path: string;
}

const collection = (group: string, version: string, kind: PolicyKindName): PolicyCollection => ({
  apiVersion: `${group}/${version}`,
  kind,
  path: `/apis/${group}/${version}/${kind.toLowerCase()}s`,
});

/** In order of preference: ours, then Istio's v1, then v1beta1 (the same stored objects as v1). */
export const POLICY_COLLECTIONS: readonly PolicyCollection[] = [
  'PeerAuthentication',
  'AuthorizationPolicy',
].flatMap((kind) => [
  collection('security.mutual.dev', 'v1', kind as PolicyKindName),
  collection('security.istio.io', 'v1', kind as PolicyKindName),
  collection('security.istio.io', 'v1beta1', kind as PolicyKindName),
]);

export interface KubernetesPolicySourceDeps {
  readonly client: KubeClient;
  readonly rootNamespace?: string;
  readonly onInformerEvent?: (path: string, event: InformerEvent) => void;
  /** The CRD behind `path` answered 404 (absent) or is listed again (present). Called on changes only. */
  readonly onPresence?: (path: string, isPresent: boolean) => void;
  /** An object was skipped; called once per object version. */
  readonly onSkipped?: (skipped: SkippedPolicy) => void;
  /** After each rebuild: how many policies are served and skipped. */
  readonly onRebuild?: (served: readonly ServedPolicy[], skipped: readonly SkippedPolicy[]) => void;
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly rebuildDelayMs?: number;
}

interface PolicyObject extends KubeObject {
  readonly metadata?: KubeObject['metadata'] & { readonly creationTimestamp?: string };
  readonly spec?: unknown;
}

/** `notice`: served, but not as written (an `unsupported` stand-in), so also listed and logged. */
type Converted =
  | { ok: true; served: ServedPolicy; notice?: SkippedPolicy }
  | { ok: false; skipped: SkippedPolicy };

export function createKubernetesPolicySource(
  deps: KubernetesPolicySourceDeps,
): PolicySource & { start(): void } {
  const rootNamespace = deps.rootNamespace ?? CONTROL_PLANE_NAMESPACE;
  const listeners = new Set<() => void>();
  const absent = new Set<string>();
  // Parsing is cached per object version: a rebuild re-parses only what changed.
  const parsed = new Map<string, { resourceVersion: string | undefined; result: Converted }>();
  let served: ServedPolicy[] = [];
  let skipped: SkippedPolicy[] = [];
  let timer: NodeJS.Timeout | undefined;
  // Set by the first rebuild after every collection was listed (or found absent); stays set, so
  // later changes never make the API answer 503 while they are indexed.
  let isComplete = false;
  const schedule = () => {
    timer ??= setTimeout(rebuild, deps.rebuildDelayMs ?? 20);
  };
  const informers = POLICY_COLLECTIONS.map((entry) => ({
    entry,
    informer: createInformer<PolicyObject>(entry.path, {
      client: deps.client,
      onChange: () => {
        if (absent.delete(entry.path)) deps.onPresence?.(entry.path, true);
        schedule();
      },
      onEvent: (event) => {
        if (event.kind === 'failed' && event.error.detail.status === 404) {
          // No such resource: the CRD is not installed (or was removed). Its cache no longer counts.
          if (!absent.has(entry.path)) {
            absent.add(entry.path);
            deps.onPresence?.(entry.path, false);
            schedule();
          }
          return;
        }
        deps.onInformerEvent?.(entry.path, event);
      },
      ...(deps.watchTimeoutSeconds ? { watchTimeoutSeconds: deps.watchTimeoutSeconds } : {}),
      ...(deps.backoff ? { backoff: deps.backoff } : {}),
    }) as Informer<PolicyObject>,
  }));

  function convert(entry: PolicyCollection, object: PolicyObject): Converted {
    const key = `${entry.path} ${objectKey(object)}`;
    const version = object.metadata?.resourceVersion;
    const cached = parsed.get(key);
    if (cached && cached.resourceVersion === version && version !== undefined) return cached.result;
    const result = convertObject(entry, object, rootNamespace);
    parsed.set(key, { resourceVersion: version, result });
    if (!result.ok) deps.onSkipped?.(result.skipped);
    else if (result.notice) deps.onSkipped?.(result.notice);
    return result;
  }

  function waitingFor(): string[] {
    return informers
      .filter(({ entry, informer }) => !informer.hasSynced && !absent.has(entry.path))
      .map(({ entry }) => entry.path);
  }

  function rebuild() {
    timer = undefined;
    const nextServed: ServedPolicy[] = [];
    const nextSkipped: SkippedPolicy[] = [];
    const taken = new Map<string, PolicyCollection>();
    const seen = new Set<string>();
    for (const { entry, informer } of informers) {
      if (absent.has(entry.path)) continue;
      for (const object of informer.objects.values()) {
        seen.add(`${entry.path} ${objectKey(object)}`);
        const result = convert(entry, object);
        if (!result.ok) {
          nextSkipped.push(result.skipped);
          continue;
        }
        if (result.notice) nextSkipped.push(result.notice);
        const id = `${entry.kind} ${result.served.resource.meta.id}`;
        const first = taken.get(id);
        if (first === undefined) {
          taken.set(id, entry);
          nextServed.push(result.served);
        } else if (first.apiVersion.split('/')[0] !== entry.apiVersion.split('/')[0]) {
          // Istio's v1 and v1beta1 list the same objects; ours and Istio's with one name are two.
          nextSkipped.push({
            apiVersion: entry.apiVersion,
            kind: entry.kind,
            id: result.served.resource.meta.id,
            reason: 'shadowed',
            message: `${first.apiVersion} has a ${entry.kind} with the same namespace/name, which applies instead`,
          });
        }
      }
    }
    for (const key of parsed.keys()) if (!seen.has(key)) parsed.delete(key);
    served = nextServed;
    skipped = nextSkipped;
    isComplete ||= waitingFor().length === 0;
    deps.onRebuild?.(served, skipped);
    for (const listener of listeners) listener();
  }

  return {
    name: 'kubernetes',
    rootNamespace,
    snapshot: () => ({ served, skipped }),
    start() {
      for (const { informer } of informers) informer.start();
    },
    notReadyReason() {
      if (isComplete) return undefined;
      const waiting = waitingFor();
      if (waiting.length > 0) return `Kubernetes: first list of ${waiting.join(', ')} not done yet`;
      return 'Kubernetes: indexing policies';
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      clearTimeout(timer);
      for (const { informer } of informers) informer.close();
    },
  };
}

/**
 * An API object → a served policy or a skipped one, through src/policy's parsePolicyObject: the
 * same parser and checks as policy files, and as the admission webhook that refuses such an
 * object at `kubectl apply` (docs/kubernetes.md).
 */
export function convertObject(
  entry: PolicyCollection,
  object: PolicyObject,
  rootNamespace: string,
): Converted {
  const meta = object.metadata ?? {};
  const id = `${meta.namespace ?? ''}/${meta.name ?? ''}`;
  const origin = `${entry.apiVersion}/${entry.kind}/${id}`;
  const result = parsePolicyObject(entry.apiVersion, entry.kind, object, origin, { rootNamespace });
  const errors = result.diagnostics.filter((diagnostic) => diagnostic.severity === 'error');
  const resource = result.resources[0];
  // Istio accepts what Mutual cannot enforce (JWT, CUSTOM, remote IPs, ...): skipping such a
  // policy would widen access, so a stricter stand-in is enforced in its place (fail closed). So is
  // one Mutual cannot read at all, which Istio may still accept: skipping an ALLOW that was a
  // workload's only one would let everyone in.
  const unsupported = errors.length > 0 ? failClosedPolicy(result.document, result.diagnostics) : undefined;
  const invalid =
    errors.length > 0 && unsupported === undefined
      ? invalidPolicyStandIn(result.document, result.diagnostics)
      : undefined;
  const standIn = unsupported ?? invalid;
  if (standIn !== undefined) {
    const replaced = parsePolicyObject(entry.apiVersion, entry.kind, standIn.document, origin, {
      rootNamespace,
    });
    const replacement = replaced.resources[0];
    if (replacement !== undefined && replaced.diagnostics.every((d) => d.severity !== 'error')) {
      return {
        ok: true,
        served: { resource: replacement, document: replaced.document as PolicyDocument },
        notice: {
          apiVersion: entry.apiVersion,
          kind: entry.kind,
          id,
          reason: invalid ? 'fail_closed' : 'unsupported',
          message: `${errors.map(describe).join('; ')}; ${standIn.summary}`,
        },
      };
    }
  }
  if (errors.length > 0 || resource === undefined) {
    return {
      ok: false,
      skipped: {
        apiVersion: entry.apiVersion,
        kind: entry.kind,
        id,
        reason: 'invalid',
        message: errors.length > 0 ? errors.map(describe).join('; ') : 'not a policy',
      },
    };
  }
  return { ok: true, served: { resource, document: result.document as PolicyDocument } };
}

function describe(diagnostic: PolicyDiagnostic): string {
  return formatDiagnostic(diagnostic)
    .split('\n')[0]!
    .replace(/^\S+: error\[[A-Z_]+\]( \([^)]*\))?: /, '');
}
