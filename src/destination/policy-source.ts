// The policies the destination service serves to proxies: PeerAuthentication and
// AuthorizationPolicy documents, validated by src/policy's parser, grouped per namespace (the
// namespace's own plus the root namespace's) under a version. Two sources: a directory of YAML
// files (`--policy-dir`) and the cluster's objects (kubernetes-policy-source.ts).
import { createHash } from 'node:crypto';
import type { MutualError } from '../errors.ts';
import {
  createPolicyStore,
  DEFAULT_ROOT_NAMESPACE,
  type PolicyResource,
  type PolicyStore,
} from '../policy/index.ts';

/** A policy as it travels: apiVersion, kind, metadata (name, namespace, creationTimestamp), spec. */
export interface PolicyDocument {
  readonly apiVersion: string;
  readonly kind: 'PeerAuthentication' | 'AuthorizationPolicy';
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly creationTimestamp?: string;
  };
  readonly spec: Record<string, unknown>;
}

/** One accepted policy: its parsed form (for counting) and the document proxies get. */
export interface ServedPolicy {
  readonly resource: PolicyResource;
  readonly document: PolicyDocument;
}

/**
 * An object the service could not use as written: `invalid` and `shadowed` ones are not served
 * (the others still apply); an `unsupported` one is served as a stricter stand-in.
 */
export interface SkippedPolicy {
  readonly apiVersion: string;
  readonly kind: string;
  /** namespace/name */
  readonly id: string;
  /**
   * invalid: skipped; shadowed: another object of the same name wins; unsupported: uses what Mutual
   * cannot enforce, a stricter stand-in applies; fail_closed: an ALLOW Mutual cannot read (Istio
   * may), an ALLOW of nothing applies in its place.
   */
  readonly reason: 'invalid' | 'shadowed' | 'unsupported' | 'fail_closed';
  readonly message: string;
}

/** `GET /v1/policies?namespace=NS`: what applies to workloads in NS. */
export interface PolicyAnswer {
  readonly namespace: string;
  readonly rootNamespace: string;
  readonly version: string;
  readonly policies: readonly PolicyDocument[];
  readonly skipped: readonly SkippedPolicy[];
}

export interface PolicySource {
  readonly name: 'file' | 'kubernetes';
  readonly rootNamespace: string;
  /** Every accepted policy and every skipped object, across namespaces. */
  snapshot(): { readonly served: readonly ServedPolicy[]; readonly skipped: readonly SkippedPolicy[] };
  /** Until the first complete view, answers would be missing policies: the API says 503. */
  notReadyReason(): string | undefined;
  subscribe(listener: () => void): () => void;
  close(): void;
}

/** The answer for workloads in `namespace`, from a snapshot; the version hashes what it carries. */
export function policyAnswer(source: PolicySource, namespace: string): PolicyAnswer {
  const { served, skipped } = source.snapshot();
  const relevant = (ns: string) => ns === namespace || ns === source.rootNamespace;
  const policies = served
    .filter((entry) => relevant(entry.resource.meta.namespace))
    .map((entry) => entry.document)
    .sort(byKindAndId);
  const skippedHere = skipped
    .filter((entry) => relevant(entry.id.split('/')[0]!))
    .sort((a, b) => compare(`${a.kind} ${a.id} ${a.apiVersion}`, `${b.kind} ${b.id} ${b.apiVersion}`));
  const version = createHash('sha256')
    .update(JSON.stringify([source.rootNamespace, policies, skippedHere]))
    .digest('hex')
    .slice(0, 16);
  return { namespace, rootNamespace: source.rootNamespace, version, policies, skipped: skippedHere };
}

function byKindAndId(a: PolicyDocument, b: PolicyDocument): number {
  return compare(
    `${a.kind} ${a.metadata.namespace}/${a.metadata.name}`,
    `${b.kind} ${b.metadata.namespace}/${b.metadata.name}`,
  );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A parsed policy back into a document (for directory policies, whose YAML is not kept). */
export function documentOf(resource: PolicyResource): PolicyDocument {
  const { meta } = resource;
  const metadata = {
    name: meta.name,
    namespace: meta.namespace,
    ...(meta.creationTimestampMs === undefined
      ? {}
      : { creationTimestamp: new Date(meta.creationTimestampMs).toISOString() }),
  };
  const selector = resource.selector === undefined ? {} : { selector: { matchLabels: resource.selector } };
  if (resource.kind === 'PeerAuthentication') {
    const portLevelMtls = Object.fromEntries(
      [...resource.portModes].map(([port, mode]) => [String(port), { mode }]),
    );
    return {
      apiVersion: 'security.mutual.dev/v1',
      kind: 'PeerAuthentication',
      metadata,
      spec: {
        ...selector,
        mtls: { mode: resource.mode },
        ...(resource.portModes.size === 0 ? {} : { portLevelMtls }),
      },
    };
  }
  return {
    apiVersion: 'security.mutual.dev/v1',
    kind: 'AuthorizationPolicy',
    metadata,
    spec: { ...selector, action: resource.action, rules: resource.rules },
  };
}

/**
 * `--policy-dir DIR`: the directory as `mutual proxy run --policy-dir` reads it (src/policy's
 * store: watched; a set with errors is refused whole and the last good one keeps serving).
 */
export async function createDirectoryPolicySource(
  directory: string,
  hooks: {
    onLoad?: (result: { ok: true; policies: number } | { ok: false; error: MutualError }) => void;
  } = {},
): Promise<PolicySource> {
  const listeners = new Set<() => void>();
  let served: ServedPolicy[] = [];
  const take = (resources: readonly PolicyResource[]) => {
    served = resources.map((resource) => ({ resource, document: documentOf(resource) }));
  };
  const store: PolicyStore = await createPolicyStore({
    directory,
    onChange: (set) => {
      take(set.resources);
      hooks.onLoad?.({ ok: true, policies: set.resources.length });
      for (const listener of listeners) listener();
    },
    onError: (error) => hooks.onLoad?.({ ok: false, error }),
  });
  take(store.current.resources);
  hooks.onLoad?.({ ok: true, policies: served.length });
  return {
    name: 'file',
    rootNamespace: store.current.rootNamespace ?? DEFAULT_ROOT_NAMESPACE,
    snapshot: () => ({ served, skipped: [] }),
    notReadyReason: () => undefined,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => store.destroy(),
  };
}
