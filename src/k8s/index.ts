// Kubernetes: the manifests `mutual install` prints, sidecar injection (offline and as an
// admission webhook) and the control plane's view of the cluster. Talks to the API server only
// through the clients here; never signs workload certificates (identity does) nor proxies traffic.

export * from './constants.ts';
export * from './inject/index.ts';
export * from './install/index.ts';
export * from './webhook/index.ts';
