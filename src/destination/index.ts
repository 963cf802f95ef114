// The destination service: answers the proxies' "is this address meshed, who must it prove to
// be, how to treat its bytes" from a table file or the cluster's Pods, Services and EndpointSlices,
// and "which policies apply to workloads in this namespace" from the cluster or a directory.
// Serves mTLS only and writes nothing: it never signs (identity does) nor carries traffic (proxy does).

export {
  answerVersion,
  type DestinationAnswer,
  type DestinationProtocol,
  type DestinationSource,
  type DestinationTarget,
  parseDestinationTarget,
  type UnmeshedReason,
} from './answer.ts';
export {
  buildClusterIndex,
  type ClusterIndex,
  type EndpointSlice,
  type Pod,
  type Service,
} from './cluster-index.ts';
export { createFileSource, type DestinationTableEntry, parseDestinationTable } from './file-source.ts';
export {
  DESTINATIONS_PATH,
  MAX_CONCURRENT_STREAMS,
  MAX_WAIT_MS,
  POLICIES_PATH,
} from './http-api.ts';
export {
  convertObject,
  createKubernetesPolicySource,
  POLICY_COLLECTIONS,
  type PolicyCollection,
} from './kubernetes-policy-source.ts';
export { createKubernetesSource, KUBERNETES_RESOURCES } from './kubernetes-source.ts';
export { createDestinationLookup, type DestinationLookup, type SourcedAnswer } from './lookup.ts';
export {
  createDirectoryPolicySource,
  documentOf,
  type PolicyAnswer,
  type PolicyDocument,
  type PolicySource,
  policyAnswer,
  type SkippedPolicy,
} from './policy-source.ts';
export {
  type DestinationService,
  type DestinationServiceConfig,
  destinationServiceId,
  startDestinationService,
} from './service.ts';
