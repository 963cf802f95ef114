// The admission webhooks (`mutual inject serve`): AdmissionReview in, the shared injection out as
// a JSON Patch (/inject), or a policy allowed or refused by src/policy's checks (/validate), over
// HTTPS with a watched serving certificate. Decides nothing injection or `mutual policy check`
// does not decide offline; never talks to the API server.

export {
  ADMISSION_API_VERSION,
  type AdmissionDecision,
  type AdmissionResponse,
  type AdmissionReviewResponse,
  type OptIn,
  parseAdmissionReview,
  reviewAdmission,
} from './admission-review.ts';
export {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  type InjectorWebhook,
  type InjectorWebhookConfig,
  MAX_ADMISSION_REVIEW_BYTES,
  startInjectorWebhook,
} from './injector-webhook.ts';
export {
  MAX_POLICY_DEPTH,
  type PolicyAdmissionDecision,
  reviewPolicyAdmission,
  VALIDATED_POLICY_GROUPS,
} from './policy-review.ts';
export {
  type CertificateReloadEvent,
  loadServingCertificate,
  type ServingCertificate,
  type ServingCertificateFiles,
  watchServingCertificate,
} from './serving-certificate.ts';
export { loadTrustAnchors, type TrustAnchors, watchTrustAnchors } from './trust-anchors.ts';
export { type FileReloadEvent, watchFiles } from './watched-files.ts';
