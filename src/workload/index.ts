// The workload side of identity, used by the proxy: keys that never leave the process, CSRs,
// certify and renew against the identity service, trust-bundle updates, credentials published
// to subscribers. Holds no policy and serves no traffic.

export { type CertifyResult, createIdentityClient, type IdentityClient } from './identity-client.ts';
export { backoffDelayMs, RENEW_AT_FRACTION, renewalDelayMs } from './renewal.ts';
export {
  createWorkloadIdentity,
  type WorkloadCredentials,
  type WorkloadEvent,
  type WorkloadIdentity,
  type WorkloadIdentityConfig,
} from './workload-identity.ts';
