// The names every Kubernetes piece must agree on: what `mutual install` creates, what the
// injector writes into pods and what the control plane looks up. Change one here, not in three
// places.

import { VERSION } from '../version.ts';

/** Where the control plane runs; also the policy root namespace (mesh-wide policies). */
export const CONTROL_PLANE_NAMESPACE = 'mutual-system';

/** The one image every component runs (`mutual <subcommand>`); `--image` overrides it. */
export const DEFAULT_IMAGE = `ghcr.io/mutual-mesh/mutual:${VERSION}`;

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** Audience of the projected ServiceAccount token the proxy presents to the identity service. */
export const IDENTITY_TOKEN_AUDIENCE = 'identity.mutual.dev';

export const PROXY_UID = 2102;

export const PROXY_PORTS = { inbound: 4143, outbound: 4140, admin: 4191 } as const;

/** Services of the control plane: `<name>.mutual-system.svc:<port>`. The ServiceAccount names match the SPIFFE IDs the components serve with (`spiffe://<td>/ns/mutual-system/sa/identity`, the proxy's default `--identity-server-id`). */
export const CONTROL_PLANE = {
  identity: { name: 'mutual-identity', port: 8443, adminPort: 9990, serviceAccount: 'identity' },
  destination: {
    name: 'mutual-destination',
    port: 8086,
    adminPort: 9996,
    serviceAccount: 'destination',
  },
  /**
   * The admission webhook: POST `path` injects pods annotated `mutual.dev/inject: enabled`; POST
   * `namespacePath` (for a webhook whose namespaceSelector picks namespaces labelled
   * `mutual.dev/inject: enabled`) injects every pod there but those annotated `disabled`; POST
   * `validatePath` (the ValidatingWebhookConfiguration) refuses policies the destination service
   * would skip. The webhooks call its Service on `servicePort`, which forwards to `port`.
   */
  injector: {
    name: 'mutual-injector',
    port: 8443,
    servicePort: 443,
    adminPort: 9995,
    serviceAccount: 'injector',
    path: '/inject',
    namespacePath: '/inject/namespace',
    validatePath: '/validate',
  },
} as const;

/** The trust anchors (PEM bundle) as a ConfigMap in mutual-system: the identity service and the injector mount and watch it; the injector copies it into each proxy's environment. */
export const TRUST_ANCHORS_CONFIG_MAP = { name: 'mutual-trust-anchors', key: 'ca-bundle.crt' } as const;

/** The issuer as a `kubernetes.io/tls` Secret (tls.crt with its chain, tls.key), cert-manager compatible. */
export const ISSUER_SECRET = {
  name: 'mutual-identity-issuer',
  certKey: 'tls.crt',
  keyKey: 'tls.key',
} as const;

/** Annotations and labels users and the injector share (Linkerd's `linkerd.io/inject` shape). */
export const ANNOTATIONS = {
  inject: 'mutual.dev/inject',
  injected: 'mutual.dev/proxy-injected',
  skipInboundPorts: 'config.mutual.dev/skip-inbound-ports',
  skipOutboundPorts: 'config.mutual.dev/skip-outbound-ports',
  skipOutboundSubnets: 'config.mutual.dev/skip-outbound-subnets',
  opaquePorts: 'config.mutual.dev/opaque-ports',
  defaultMode: 'config.mutual.dev/default-mode',
  proxyImage: 'config.mutual.dev/proxy-image',
  proxyCpuRequest: 'config.mutual.dev/proxy-cpu-request',
  proxyMemoryRequest: 'config.mutual.dev/proxy-memory-request',
  proxyCpuLimit: 'config.mutual.dev/proxy-cpu-limit',
  proxyMemoryLimit: 'config.mutual.dev/proxy-memory-limit',
  /** `"false"` keeps the app's HTTP probes as they are (by default they go through the proxy's admin port). */
  rewriteAppProbes: 'config.mutual.dev/rewrite-app-probes',
} as const;

export const LABELS = {
  controlPlaneComponent: 'mutual.dev/control-plane-component',
  proxyInjected: 'mutual.dev/proxy-injected',
  /** On a namespace: `enabled` opts every pod in it into injection (a webhook namespaceSelector). */
  inject: 'mutual.dev/inject',
} as const;

export const INJECT_VALUES = { enabled: 'enabled', disabled: 'disabled' } as const;

/**
 * The injector's MutatingWebhookConfiguration: one webhook for namespaces labelled
 * `mutual.dev/inject: enabled` (calls `CONTROL_PLANE.injector.namespacePath`), one for pods
 * annotated so elsewhere (calls `path`); and the `kubernetes.io/tls` Secret (tls.crt, tls.key,
 * ca.crt) with the injector's serving certificate.
 */
export const INJECTOR_WEBHOOK = {
  configurationName: 'mutual-proxy-injector',
  namespaceWebhookName: 'namespaces.proxy-injector.mutual.dev',
  podWebhookName: 'pods.proxy-injector.mutual.dev',
  secretName: 'mutual-injector-tls',
} as const;

/**
 * The ValidatingWebhookConfiguration that sends every CREATE and UPDATE of a policy to the
 * injector's `CONTROL_PLANE.injector.validatePath`, served with the same certificate.
 */
export const POLICY_VALIDATOR_WEBHOOK = {
  configurationName: 'mutual-policy-validator',
  webhookName: 'policies.validation.mutual.dev',
} as const;
