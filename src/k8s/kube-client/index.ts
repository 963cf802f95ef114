// The control plane's view of the API server: list + watch collections into local caches. Reads
// only (GET list and watch); writes nothing to the cluster and knows no resource kind's meaning.

export {
  createInformer,
  type Informer,
  type InformerDeps,
  type InformerEvent,
  objectKey,
} from './informer.ts';
export {
  createKubeClient,
  type KubeClient,
  type KubeConnection,
  type KubeGetResult,
  type KubeList,
  type KubeObject,
  type ObjectMeta,
  type WatchEvent,
} from './kube-client.ts';
export { inClusterConnection, kubeconfigConnection } from './kubeconfig.ts';
