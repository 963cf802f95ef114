// The command line of each control-plane container and the paths it reads its files from: the
// one place to change when a daemon's flags change (`mutual identity serve`, `mutual destination
// serve`, `mutual inject serve`).
import { CONTROL_PLANE, ISSUER_SECRET, TRUST_ANCHORS_CONFIG_MAP } from '../constants.ts';

/** Where Secrets and ConfigMaps are mounted inside the control-plane containers. */
export const MOUNTS = {
  trustAnchors: '/var/run/mutual/identity/trust-anchors',
  issuer: '/var/run/mutual/identity/issuer',
  injectorTls: '/var/run/mutual/injector/tls',
  /** An emptyDir: the identity service's state (join-token key, audit log); the root filesystem is read-only. */
  state: '/var/lib/mutual',
} as const;

const anyAddress = (port: number) => `0.0.0.0:${port}`;

export function identityArgs(options: { svidLifetime: string }): string[] {
  const { port, adminPort } = CONTROL_PLANE.identity;
  return [
    'identity',
    'serve',
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

export function destinationArgs(): string[] {
  const { port, adminPort } = CONTROL_PLANE.destination;
  return [
    'destination',
    'serve',
    '--listen',
    anyAddress(port),
    '--admin-listen',
    anyAddress(adminPort),
    '--kubernetes',
    'in-cluster',
  ];
}

export function injectorArgs(): string[] {
  const { port, adminPort } = CONTROL_PLANE.injector;
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
  ];
}
