// Traps across policies, for `mutual policy check`: several PeerAuthentications at one level
// (only the oldest counts), and — given the known workloads — policies that select nothing.
// Single-policy traps are found while parsing (rules-check.ts).
import type { PolicyDiagnostic } from './diagnostic.ts';
import {
  compareByAge,
  DEFAULT_ROOT_NAMESPACE,
  formatSelector,
  type PeerAuthenticationResource,
  type PolicyResource,
  selectorMatches,
} from './resource.ts';
import type { WorkloadRef } from './types.ts';

export interface CheckOptions {
  readonly rootNamespace?: string;
  /** Known workloads; when given, selectors and namespaces that match none are reported. */
  readonly workloads?: readonly WorkloadRef[];
}

export function checkPolicySet(
  resources: readonly PolicyResource[],
  options: CheckOptions = {},
): PolicyDiagnostic[] {
  const rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const found: PolicyDiagnostic[] = [];
  const warn = (resource: PolicyResource, code: string, message: string, hint: string) =>
    found.push({
      ...resource.meta.position,
      severity: 'warning',
      code,
      policy: resource.meta.id,
      message,
      hint,
    });

  const peerAuthentications = resources.filter(
    (r): r is PeerAuthenticationResource => r.kind === 'PeerAuthentication',
  );
  // Namespace- and mesh-level: one per namespace counts.
  const byNamespace = new Map<string, PeerAuthenticationResource[]>();
  for (const policy of peerAuthentications) {
    if (policy.selector !== undefined) continue;
    const list = byNamespace.get(policy.meta.namespace) ?? [];
    list.push(policy);
    byNamespace.set(policy.meta.namespace, list);
  }
  for (const [namespace, list] of byNamespace) {
    if (list.length < 2) continue;
    const [winner, ...losers] = [...list].sort((a, b) => compareByAge(a.meta, b.meta));
    const level = namespace === rootNamespace ? 'mesh-level' : `namespace-level (${namespace})`;
    for (const loser of losers) {
      warn(
        loser,
        'several-at-one-level',
        `${list.length} ${level} PeerAuthentications: ${winner!.meta.id} is the oldest and wins; this one is ignored`,
        'Keep one PeerAuthentication without a selector per namespace; merge or delete the others.',
      );
    }
  }
  // Workload-level: two selector policies that a workload could match at once.
  const selectorPolicies = peerAuthentications
    .filter((p) => p.selector !== undefined && p.meta.namespace !== rootNamespace)
    .sort((a, b) => compareByAge(a.meta, b.meta));
  for (const [index, newer] of selectorPolicies.entries()) {
    const older = selectorPolicies
      .slice(0, index)
      .find((p) => p.meta.namespace === newer.meta.namespace && isCompatible(p.selector!, newer.selector!));
    if (older !== undefined) {
      warn(
        newer,
        'several-at-one-level',
        `workloads matching both ${formatSelector(older.selector)} and ${formatSelector(newer.selector)} get only ${older.meta.id} (older); this one is ignored for them`,
        'Make the selectors disjoint, or merge the two policies into one.',
      );
    }
  }
  if (options.workloads !== undefined)
    found.push(...unmatched(resources, options.workloads, rootNamespace, warn));
  return found;
}

function unmatched(
  resources: readonly PolicyResource[],
  workloads: readonly WorkloadRef[],
  rootNamespace: string,
  warn: (resource: PolicyResource, code: string, message: string, hint: string) => void,
): PolicyDiagnostic[] {
  const known = [...new Set(workloads.map((workload) => workload.namespace))].sort().join(', ');
  for (const resource of resources) {
    const namespace = resource.meta.namespace;
    const isMeshWide = namespace === rootNamespace && resource.kind === 'AuthorizationPolicy';
    if (resource.kind === 'PeerAuthentication' && namespace === rootNamespace) continue;
    const candidates = isMeshWide
      ? workloads
      : workloads.filter((workload) => workload.namespace === namespace);
    if (candidates.length === 0) {
      warn(
        resource,
        'namespace-has-no-workloads',
        `no known workload in namespace "${namespace}" (known: ${known || 'none'})`,
        'Check metadata.namespace: a policy in the wrong namespace protects nothing.',
      );
    } else if (!candidates.some((workload) => selectorMatches(resource.selector, workload.labels))) {
      warn(
        resource,
        'selector-matches-nothing',
        `selector ${formatSelector(resource.selector)} matches no known workload in ${isMeshWide ? 'the mesh' : `namespace "${namespace}"`}`,
        'Check the labels against the workload (kubectl get pods --show-labels) and the namespace.',
      );
    }
  }
  return [];
}

/** Could one set of labels satisfy both selectors? (No key with two different values.) */
function isCompatible(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  for (const key in a) if (key in b && a[key] !== b[key]) return false;
  return true;
}
