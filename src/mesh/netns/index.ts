// Pods on one machine: network namespaces on a bridge in 198.18.0.0/15, proxy-init's iptables
// rules in each, per-pod /etc/hosts, all of it recorded in the state directory and removed
// again. Used by `mutual up --isolation netns` and by the test harness (src/testing/netns.ts).
// Starts no long-lived process itself; never touches the host's iptables.

export { podAppAccessProblem, podProgramProblem, podRuntimeAccessProblem } from './app-access.ts';
export { type CommandResult, hasCommand, ip, mustRun, runCommand } from './commands.ts';
export { podListenProblem, waitForPodListen } from './listening.ts';
export {
  createMeshNetwork,
  forgetNetworkRecord,
  hostsFile,
  iptablesIn,
  type MeshNetwork,
  type MeshNetworkRecord,
  meshNetworkId,
  type NetworkRemoval,
  networkRecordPath,
  POD_HOST_NAMES,
  type PodSpec,
  podNameProblem,
  readNetworkRecord,
  removeMeshNetwork,
} from './mesh-network.ts';
export {
  addBridge,
  addNamespace,
  addPodLink,
  deleteNamespace,
  inNamespace,
  listNamespaces,
  namespaceExists,
} from './namespaces.ts';
export {
  APP_UID,
  POD_SIDECAR_PORTS,
  PROXY_UID,
  planNetnsMesh,
  podPortProblem,
} from './plan-netns.ts';
export type { PodRecord } from './pod.ts';
export { netnsUnavailableReason, requireNetns } from './preflight.ts';
export { candidateSubnets, type MeshSubnet, meshSubnet, podAddress } from './subnet.ts';
