// The command line of each control-plane container and the paths it reads its files from: the
// one place to change when a daemon's flags change (`mutual identity serve`, `mutual destination
// serve`, `mutual inject serve`).
import {
  CONTROL_PLANE,
  CONTROL_PLANE_NAMESPACE,
  ISSUER_SECRET,
  TRUST_ANCHORS_CONFIG_MAP,
} from '../constants.ts';
import type { InstallConfig } from './install-options.ts';

/** Where Secrets and ConfigMaps are mounted inside the control-plane containers. */
export const MOUNTS = {
  trustAnchors: '/var/run/mutual/identity/trust-anchors',
  issuer: '/var/run/mutual/identity/issuer',
  injectorTls: '/var/run/mutual/injector/tls',
  /** The trust anchors ConfigMap again, for the injector to copy into every proxy's environment. */
  injectorTrustAnchors: '/var/run/mutual/injector/trust-anchors',
  /** A projected ServiceAccount token for the identity service (audience identity.mutual.dev). */
  identityToken: '/var/run/secrets/mutual.dev/serviceaccount',
  /** An emptyDir: the identity service's state (join-token key, audit log); the root filesystem is read-only. */
  state: '/var/lib/mutual',
} as const;

const anyAddress = (port: number) => `0.0.0.0:${port}`;

export function identityArgs(options: { svidLifetime: string; trustDomain: string }): string[] {
  const { port, adminPort } = CONTROL_PLANE.identity;
  return [
    'identity',
    'serve',
    // Named, not read from the issuer: cert-manager may renew it into one without a spiffe:// URI
    // SAN (issuers made for Linkerd or Istio have none), and it must keep signing for this domain.
    '--trust-domain',
    options.trustDomain,
    '--issuer-cert',
    `${MOUNTS.issuer}/${ISSUER_SECRET.certKey}`,
    '--issuer-key',
    `${MOUNTS.issuer}/${ISSUER_SECRET.keyKey}`,
    '--trust-anchors',
    `${MOUNTS.trustAnchors}/${TRUST_ANCHORS_CONFIG_MAP.key}`,
    '--token-review-url',
    'in-cluster',
    '--state-dir',
    MOUNTS.state,
    '--lifetime',
    options.svidLifetime,
    '--listen',
    anyAddress(port),
    '--admin-listen',
    anyAddress(adminPort),
  ];
}

/** The destination service serves mTLS with a certificate from the identity service, like a proxy. */
export function destinationArgs(trustDomain: string): string[] {
  const { port, adminPort } = CONTROL_PLANE.destination;
  const identity = CONTROL_PLANE.identity;
  return [
    'destination',
    'serve',
    '--listen',
    anyAddress(port),
    '--admin-listen',
    anyAddress(adminPort),
    '--kubernetes',
    'in-cluster',
    '--trust-domain',
    trustDomain,
    '--identity-url',
    `https://${identity.name}.${CONTROL_PLANE_NAMESPACE}.svc:${identity.port}`,
    '--token-file',
    `${MOUNTS.identityToken}/token`,
    '--identity-bundle',
    `${MOUNTS.trustAnchors}/${TRUST_ANCHORS_CONFIG_MAP.key}`,
  ];
}

/** The injector also takes what it writes into pods: the image, the trust domain, the anchors, proxy resources. */
export function injectorArgs(config: InstallConfig, trustDomain: string): string[] {
  const { port, adminPort } = CONTROL_PLANE.injector;
  const resources = config.proxyResources;
  const optional = (flag: string, value: string | undefined) => (value === undefined ? [] : [flag, value]);
  return [
    'inject',
    'serve',
    '--listen',
    anyAddress(port),
    '--admin-listen',
    anyAddress(adminPort),
    '--cert',
    `${MOUNTS.injectorTls}/tls.crt`,
    '--key',
    `${MOUNTS.injectorTls}/tls.key`,
    '--image',
    config.image,
    '--trust-domain',
    trustDomain,
    '--trust-anchors-file',
    `${MOUNTS.injectorTrustAnchors}/${TRUST_ANCHORS_CONFIG_MAP.key}`,
    ...optional('--proxy-cpu-request', resources.cpuRequest),
    ...optional('--proxy-memory-request', resources.memoryRequest),
    ...optional('--proxy-cpu-limit', resources.cpuLimit),
    ...optional('--proxy-memory-limit', resources.memoryLimit),
    ...optional('--default-mode', config.proxyDefaultMode),
  ];
}
