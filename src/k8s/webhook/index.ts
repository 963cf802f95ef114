// The mutating admission webhook (`mutual inject serve`): AdmissionReview in, the shared
// injection out as a JSON Patch, over HTTPS with a watched serving certificate. Decides nothing
// injection does not decide offline; never talks to the API server.

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
  type CertificateReloadEvent,
  loadServingCertificate,
  type ServingCertificate,
  type ServingCertificateFiles,
  watchServingCertificate,
} from './serving-certificate.ts';
export { loadTrustAnchors, type TrustAnchors, watchTrustAnchors } from './trust-anchors.ts';
export { type FileReloadEvent, watchFiles } from './watched-files.ts';
