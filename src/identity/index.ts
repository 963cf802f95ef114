// The control plane's CA: authenticates workloads by token, signs their CSRs for exactly that
// identity, serves the trust bundle. Never takes an identity from a CSR; never sees a private key.

// The connection caps are src/net's, shared with the destination service.
export {
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  defaultMaxConnections,
  MAX_DEFAULT_CONNECTIONS,
} from '../net/index.ts';
export { type AuditEntry, type AuditLog, memoryAuditLog, openAuditLog } from './audit-log.ts';
export {
  type CaCertificateSummary,
  type CaStatusAnswer,
  caStatusAnswer,
  summarizeCertificate,
} from './ca-status.ts';
// The checks the service applies to CA files; `mutual install` applies the same ones before rendering.
export { assertIssuerUnderAnchors, loadIssuer } from './ca-validation.ts';
export {
  type CaReloadEvent,
  type CaState,
  type CaWatcher,
  type CaWatcherStatus,
  createCaWatcher,
  loadCaFiles,
} from './ca-watcher.ts';
export { type Certifier, type CertifyRequest, type CertifyResponse, createCertifier } from './certifier.ts';
export {
  type BundleSource,
  createIdentityApiServer,
  DEFAULT_CLIENT_TIMEOUT_MS,
  MAX_REQUEST_BODY_BYTES,
} from './http-api.ts';
export { assertIssuesVerifiable } from './issuer-probe.ts';
export {
  type AuthenticatedCaller,
  assertServiceAccountFlags,
  createJoinTokenAuthenticator,
  createJoinTokenIssuer,
  describeJoinToken,
  IDENTITY_AUDIENCE,
  identityFromServiceAccount,
  type JoinTokenDescription,
  joinTokenId,
  type TokenAuthenticator,
} from './join-token.ts';
export { DEFAULT_AUTH_FAILURE_LIMIT, DEFAULT_RATE_LIMIT, type RateLimit } from './rate-limiter.ts';
export {
  type IdentityService,
  type IdentityServiceConfig,
  identityServiceId,
  startIdentityService,
} from './service.ts';
export { JOIN_TOKEN_KEY_FILE, loadOrCreateJoinTokenKey } from './token-key.ts';
export {
  createChainedAuthenticator,
  createTokenReviewAuthenticator,
  IN_CLUSTER_FILES,
  inClusterApiServerUrl,
  type TokenReviewConfig,
} from './token-review.ts';
export {
  appendTokenRevocation,
  isTokenId,
  REVOKED_TOKENS_FILE,
  type TokenRevocation,
} from './token-revocations.ts';
