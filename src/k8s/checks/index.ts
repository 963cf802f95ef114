// `mutual check` against a cluster: the API server and its clock, the control plane's
// Deployments, the trust anchors and issuer, the injector's webhook and policy validator and the
// meshed pods, as check categories (mesh/checks' shape). Reads the cluster with GET only; never changes it.

export { type ClusterView, createClusterView, type ServerVersion } from './cluster-view.ts';
export { MAX_LISTED_PODS, restartCommand } from './data-plane-checks.ts';
export {
  findKubeconfig,
  type KubernetesChecks,
  type KubernetesTargetEnvironment,
  type KubernetesTargetFlags,
  kubernetesChecks,
} from './kubernetes-target.ts';
