// A validated set of policies, compiled once, answering `forWorkload(ref)` with an immutable
// WorkloadPolicy (cached per workload). Also the static policy used without a policy directory.
import { type CompiledPolicy, createAuthorizer } from './authorize.ts';
import { modeForPort, resolvePeerAuthentication } from './peer-authentication.ts';
import {
  type AuthorizationPolicyResource,
  DEFAULT_ROOT_NAMESPACE,
  type PeerAuthenticationResource,
  type PolicyResource,
  selectorMatches,
} from './resource.ts';
import { compileRule } from './rule-compile.ts';
import { ISTIO_DEFAULT_TRUST_DOMAIN, withLocalTrustDomain } from './trust-domain.ts';
import type { ExplainableWorkloadPolicy, PeerAuthenticationMode, WorkloadRef } from './types.ts';

export interface PolicySet {
  readonly rootNamespace: string;
  readonly resources: readonly PolicyResource[];
  forWorkload(ref: WorkloadRef): ExplainableWorkloadPolicy;
}

export function compilePolicySet(
  resources: readonly PolicyResource[],
  options: { rootNamespace?: string } = {},
): PolicySet {
  const rootNamespace = options.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const peerAuthentications = resources.filter(
    (r): r is PeerAuthenticationResource => r.kind === 'PeerAuthentication',
  );
  const authorizationPolicies = resources
    .filter((r): r is AuthorizationPolicyResource => r.kind === 'AuthorizationPolicy')
    .sort((a, b) => (a.meta.id < b.meta.id ? -1 : a.meta.id > b.meta.id ? 1 : 0));
  // Compile every rule now, so a request never builds a matcher; once more per other trust
  // domain a workload is in (its `cluster.local` principals name that domain, as in Istio).
  const compileFor = (trustDomain: string) =>
    authorizationPolicies.map((policy) => ({
      resource: policy,
      compiled: {
        id: policy.meta.id,
        action: policy.action,
        rules: policy.rules.map((rule) =>
          compileRule(withLocalTrustDomain(rule, trustDomain), policy.action, policy.meta.namespace),
        ),
      } satisfies CompiledPolicy,
    }));
  const byTrustDomain = new Map([[ISTIO_DEFAULT_TRUST_DOMAIN, compileFor(ISTIO_DEFAULT_TRUST_DOMAIN)]]);
  const compiledFor = (trustDomain = ISTIO_DEFAULT_TRUST_DOMAIN) => {
    let compiled = byTrustDomain.get(trustDomain);
    if (compiled === undefined) {
      compiled = compileFor(trustDomain);
      byTrustDomain.set(trustDomain, compiled);
    }
    return compiled;
  };
  const cache = new Map<string, ExplainableWorkloadPolicy>();
  return {
    rootNamespace,
    resources,
    forWorkload(ref) {
      const key = workloadKey(ref);
      let policy = cache.get(key);
      if (policy === undefined) {
        const applicable = compiledFor(ref.trustDomain)
          .filter(({ resource }) => appliesTo(resource, ref, rootNamespace))
          .map(({ compiled }) => compiled);
        policy = workloadPolicy(
          ref,
          resolvePeerAuthentication(peerAuthentications, ref, rootNamespace),
          applicable,
        );
        cache.set(key, policy);
      }
      return policy;
    },
  };
}

/** An AuthorizationPolicy applies in its own namespace, or mesh-wide from the root namespace; its selector narrows it. */
export function appliesTo(
  policy: AuthorizationPolicyResource,
  ref: WorkloadRef,
  rootNamespace: string,
): boolean {
  const namespace = policy.meta.namespace;
  if (namespace !== ref.namespace && namespace !== rootNamespace) return false;
  return selectorMatches(policy.selector, ref.labels);
}

function workloadPolicy(
  workload: WorkloadRef,
  resolved: ReturnType<typeof resolvePeerAuthentication>,
  policies: readonly CompiledPolicy[],
): ExplainableWorkloadPolicy {
  const authorizer = createAuthorizer(policies);
  const ids = (action: string) =>
    policies.filter((policy) => policy.action === action).map((policy) => policy.id);
  return Object.freeze({
    workload,
    authorizationPolicies: { ALLOW: ids('ALLOW'), DENY: ids('DENY'), AUDIT: ids('AUDIT') },
    peerAuthenticationMode: (port: number) => modeForPort(resolved, port),
    explainPeerAuthentication: (port: number) => resolved.ports.get(port) ?? resolved.workload,
    authorizeConnection: authorizer.authorizeConnection,
    authorizeRequest: authorizer.authorizeRequest,
  });
}

function workloadKey(ref: WorkloadRef): string {
  const labels = Object.keys(ref.labels)
    .sort()
    .map((key) => `${key}=${ref.labels[key]}`);
  return JSON.stringify([ref.trustDomain ?? ISTIO_DEFAULT_TRUST_DOMAIN, ref.namespace, ...labels]);
}

/** For a proxy without a policy directory: allow everything, with the given modes. */
export function staticWorkloadPolicy(options: {
  mode: PeerAuthenticationMode;
  portModes?: ReadonlyMap<number, PeerAuthenticationMode> | Readonly<Record<number, PeerAuthenticationMode>>;
  workload?: WorkloadRef;
}): ExplainableWorkloadPolicy {
  const portModes =
    options.portModes instanceof Map
      ? new Map(options.portModes)
      : new Map(
          Object.entries(options.portModes ?? {}).map(([port, mode]) => [
            Number(port),
            mode as PeerAuthenticationMode,
          ]),
        );
  const allowed = Object.freeze({ allowed: true as const });
  return Object.freeze({
    workload: options.workload ?? { namespace: 'default', labels: {} },
    authorizationPolicies: { ALLOW: [], DENY: [], AUDIT: [] },
    peerAuthenticationMode: (port: number) => portModes.get(port) ?? options.mode,
    explainPeerAuthentication: (port: number) => {
      const portMode = portModes.get(port);
      return portMode === undefined
        ? { mode: options.mode, level: 'workload' as const }
        : { mode: portMode, level: 'port' as const };
    },
    authorizeConnection: () => allowed,
    authorizeRequest: () => allowed,
  });
}
