// The sidecar: inbound mTLS termination, outbound mTLS origination, live rotation, metrics.
// Talks to the app on 127.0.0.1 and to other proxies over TLS 1.3 only; decides nothing about
// who may call whom (policy does) and never signs anything (the identity service does).

export { connectApp } from './app-connect.ts';
export { type AppProbeResult, probeApp } from './app-probes.ts';
export { type CredentialSource, createCredentialSource, loadCredentialFiles } from './credential-source.ts';
export { classifyFirstBytes, peekFirstBytes, type StreamProtocol } from './detect.ts';
export { CLIENT_ID_HEADER, DENIED_BY_HEADER, PROXY_ERROR_HEADER } from './http-forward.ts';
export * from './intercept/index.ts';
export { createProxyMetrics, type ProxyMetrics } from './metrics.ts';
export {
  type DestinationResolver,
  type MeshedDestination,
  staticDestinations,
} from './outbound/destinations.ts';
export {
  createPolicyClient,
  type PolicyClient,
  type PolicyClientOptions,
  withDefaultModes,
} from './policy-client.ts';
export { createProxy, type Proxy, type ProxyAddresses, type ProxyDeps } from './proxy.ts';
export { createProxyLog, type ProxyLog } from './proxy-log.ts';
