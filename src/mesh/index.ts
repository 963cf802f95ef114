// Running a mesh on one machine: mesh.yaml, the CA and identity service, one app and one sidecar
// per service in their own process groups, runtime.json for the other commands. Starts and stops
// processes; never serves traffic itself.

export { formatSocket, type ListeningSocket, listeningSocketsByGroup } from './app-sockets.ts';
export { buildEdges, type Edge, edgeKey, edgeTarget, type ProxySamples } from './edges.ts';
export { ensureMeshCa, type MeshCa } from './mesh-ca.ts';
export {
  envPrefix,
  loadMeshConfig,
  type MeshConfig,
  type MeshConfigProblem,
  type MeshPort,
  type MeshService,
  type MeshUpstream,
  parseMeshConfig,
} from './mesh-config.ts';
export { type MeshPlan, planMesh, portsNeeded, type ServicePlan } from './plan.ts';
export { isRunning, processStartTicks, tailFile } from './processes.ts';
export { parsePrometheusText, type Sample } from './prometheus-text.ts';
export { type HttpAnswer, httpGet } from './readiness.ts';
export {
  findService,
  type MeshPaths,
  type MeshRuntime,
  meshPaths,
  type RuntimeProcess,
  type RuntimeService,
  readRuntime,
  requireStateDirectory,
  tryReadRuntime,
} from './runtime.ts';
export { fetchProxyIdentity, type ProxyIdentity, type ScrapeResult, scrapeProxies } from './scrape.ts';
export { type Mesh, type MeshDeps, type MeshProgress, startMesh } from './start-mesh.ts';
export { type DownResult, downMesh, stopRuntime } from './stop-mesh.ts';
