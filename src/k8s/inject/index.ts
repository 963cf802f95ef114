// Sidecar injection: one pure function from a pod to the injected pod (or the reason it was left
// alone), used by `mutual inject` on YAML and by the admission webhook as a JSON Patch. Reads no
// cluster state and writes no files.

export { type AppContainerLike, type ProbeRewrite, rewriteAppProbes } from './app-probes.ts';
export { type InjectManifestsResult, type InjectReportLine, injectManifests } from './inject-manifests.ts';
export {
  DEFAULT_INJECT_OPTIONS,
  type InjectDefaults,
  type InjectOptions,
  type InjectOutcome,
  injectPod,
  type PodLike,
  podInjectLabel,
  type SkipReason,
} from './inject-pod.ts';
export {
  diffJsonPatch,
  diffValues,
  escapePointerToken,
  isDeepEqual,
  type JsonPatchOperation,
  type PathOperation,
  toPointer,
} from './json-patch.ts';
export {
  type AnnotationProblem,
  PEER_AUTHENTICATION_MODES,
  type PeerAuthenticationMode,
  type PodAnnotationConfig,
  RESOURCE_ANNOTATIONS,
  readPodAnnotations,
} from './pod-annotations.ts';
export {
  findPodTemplates,
  INJECTABLE_KINDS,
  isNestedDeeper,
  MAX_POD_DEPTH,
  type PodTemplateLocation,
} from './pod-templates.ts';
export {
  DEFAULT_PROXY_RESOURCES,
  isQuantity,
  MIN_PROXY_MEMORY_LIMIT,
  type ProxyResourceField,
  type ProxyResources,
  proxyResourceFlagProblems,
  quantityProblem,
  RESOURCE_FLAGS,
  requestOverLimitProblems,
} from './proxy-resources.ts';
export {
  DESTINATION_URL,
  IDENTITY_URL,
  INIT_CONTAINER_NAME,
  POD_ENV,
  PROXY_CONTAINER_NAME,
  PROXY_PATHS,
  TOKEN_EXPIRATION_S,
  VOLUMES,
} from './sidecar.ts';
