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
    } else {
      const selected = candidates.filter((workload) => selectorMatches(resource.selector, workload.labels));
      undeclaredPorts(resource, selected, warn);
    }
  }
  return [];
}

/**
 * Ports a policy names that none of the workloads it selects declares: such a rule, condition or
 * portLevelMtls entry never matches (a DENY denies nothing there, an ALLOW allows nothing). In a
 * loopback mesh, the port the app listens on ($PORT, new at every start) is the likely mistake.
 */
function undeclaredPorts(
  resource: PolicyResource,
  selected: readonly WorkloadRef[],
  warn: (resource: PolicyResource, code: string, message: string, hint: string) => void,
): void {
  if (selected.length === 0 || selected.some((workload) => workload.ports === undefined)) return;
  const declared = new Set(selected.flatMap((workload) => workload.ports ?? []));
  const named = new Set<number>();
  if (resource.kind === 'PeerAuthentication') {
    for (const port of resource.portModes.keys()) named.add(port);
  } else {
    for (const rule of resource.rules) {
      for (const { operation } of rule.to ?? [])
        for (const port of [...(operation.ports ?? []), ...(operation.notPorts ?? [])])
          named.add(Number(port));
      for (const condition of rule.when ?? []) {
        if (condition.key !== 'destination.port') continue;
        for (const port of [...(condition.values ?? []), ...(condition.notValues ?? [])]) {
          if (/^[0-9]+$/.test(port)) named.add(Number(port));
        }
      }
    }
  }
  const undeclared = [...named].filter((port) => !declared.has(port)).sort((a, b) => a - b);
  if (undeclared.length === 0) return;
  const workloads = selected
    .map(
      (workload) =>
        `${workload.name ?? formatSelector(workload.labels)}: ${workload.ports!.join(', ') || 'none'}`,
    )
    .join('; ');
  warn(
    resource,
    'port-not-declared',
    `${undeclared.length === 1 ? 'port' : 'ports'} ${undeclared.join(', ')} ${undeclared.length === 1 ? 'is' : 'are'} not declared by any workload this policy selects (${workloads}): ${resource.kind === 'PeerAuthentication' ? 'that portLevelMtls entry never applies' : 'rules on it never match'}`,
    "Name the ports mesh.yaml declares: policies see those, not the $PORT an app listens on in a loopback mesh (mutual up's Apps list).",
  );
}

/** Could one set of labels satisfy both selectors? (No key with two different values.) */
function isCompatible(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  for (const key in a) if (key in b && a[key] !== b[key]) return false;
  return true;
}
