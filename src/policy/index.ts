// Istio-compatible PeerAuthentication and AuthorizationPolicy: parse and validate YAML, resolve
// the mTLS mode and authorize connections and requests for a workload, watch a directory.
// Pure except store.ts and load.ts (files); never touches the network.

export { type CheckOptions, checkPolicySet } from './check.ts';
export { closestName } from './closest-name.ts';
export {
  diagnosticsError,
  formatDiagnostic,
  type PolicyDiagnostic,
  type SourcePosition,
} from './diagnostic.ts';
export { type FailClosedPolicy, failClosedPolicy, invalidPolicyStandIn } from './fail-closed.ts';
export { isPolicyFileName, type LoadedPolicies, listPolicyFiles, loadPolicyFiles } from './load.ts';
export { type ParseOptions, type ParseResult, parsePolicyText } from './parse.ts';
export { type PolicyApiDocument, parsePolicyObject, policyDocumentOf } from './parse-object.ts';
export { compilePolicySet, type PolicySet, staticWorkloadPolicy } from './policy-set.ts';
export {
  authorityProblem,
  hostProblem,
  methodProblem,
  normalizePath,
  parseRequestTarget,
  type RequestTarget,
} from './request-path.ts';
export {
  type AuthorizationAction,
  type AuthorizationPolicyResource,
  DEFAULT_NAMESPACE,
  DEFAULT_ROOT_NAMESPACE,
  formatSelector,
  type PeerAuthenticationResource,
  type PolicyResource,
} from './resource.ts';
export { API_VERSIONS, type MtlsMode, POLICY_KINDS } from './schema.ts';
export { createPolicyStore, type PolicyStore, type PolicyStoreOptions } from './store.ts';
export { trustDomainOf } from './trust-domain.ts';
export type * from './types.ts';
