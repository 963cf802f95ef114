// `mutual install`: renders the control plane (namespace, policy CRDs, identity, destination,
// injector and its webhook) as manifests. Offline: reads local CA files, never talks to a cluster.

export { MOUNTS } from './component-args.ts';
export type { K8sObject } from './control-plane-workload.ts';
export { type IdentityCa, resolveIdentityCa } from './identity-ca.ts';
export { FAILURE_POLICY_COMMENT, NEVER_INJECTED_NAMESPACES } from './injector-manifests.ts';
export {
  IMAGE_PULL_POLICIES,
  INSTALL_DEFAULTS,
  type InstallConfig,
  type InstallFlags,
  parseInstallFlags,
  WEBHOOK_FAILURE_POLICIES,
  type WebhookFailurePolicy,
} from './install-options.ts';
export { POLICY_API_GROUP, POLICY_PLURALS, policyCrds } from './policy-crds.ts';
export { installYaml, type RenderedInstall, renderInstall } from './render-install.ts';
export { createWebhookCertificate, type WebhookCertificate, webhookDnsNames } from './webhook-certificate.ts';
