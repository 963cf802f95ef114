import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createAdminServer } from '../admin/index.ts';
import type { Clock } from '../clock.ts';
import { Counter, createRegistry, Gauge } from '../metrics/index.ts';
import {
  type CertificateAuthority,
  generateKeyPair,
  issueSvid,
  parseCertificate,
  privateKeyToPem,
  type TrustBundle,
} from '../pki/index.ts';
import { readCaDirectory } from '../store/index.ts';
import { backoffDelayMs, renewalDelayMs } from '../workload/index.ts';
import { openAuditLog } from './audit-log.ts';
import { createCertifier } from './certifier.ts';
import { type BundleSource, createIdentityApiServer } from './http-api.ts';
import { createJoinTokenAuthenticator } from './join-token.ts';
import type { RateLimit } from './rate-limiter.ts';
import { loadOrCreateJoinTokenKey } from './token-key.ts';

export interface IdentityServiceConfig {
  readonly caDir: string;
  readonly stateDir: string;
  readonly listen: { host: string; port: number };
  readonly adminListen: { host: string; port: number };
  readonly lifetimeMs: number;
  readonly skewMs: number;
  readonly rateLimit?: RateLimit;
  readonly clock: Clock;
}

export interface IdentityService {
  readonly apiUrl: string;
  readonly adminUrl: string;
  readonly trustDomain: string;
  /** Stop accepting, let requests in flight finish. */
  close(): Promise<void>;
}

/** The identity service's own SPIFFE ID, which workloads expect when they call it. */
export function identityServiceId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/mutual-system/sa/identity`;
}

export async function startIdentityService(config: IdentityServiceConfig): Promise<IdentityService> {
  const { issuer, bundle } = await readCaDirectory(config.caDir, config.clock);
  const tokenKey = await loadOrCreateJoinTokenKey(config.stateDir);
  const audit = openAuditLog(join(config.stateDir, 'audit.log'));
  const registry = createRegistry();
  const issued = new Counter({
    name: 'mutual_identity_certificates_issued_total',
    help: 'Workload certificates signed.',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'mutual_identity_certificates_refused_total',
    help: 'Certify requests refused, by error code.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const current: { issuer: CertificateAuthority | undefined; bundle: TrustBundle } = { issuer, bundle };
  new Gauge({
    name: 'mutual_identity_issuer_expiry_timestamp_seconds',
    help: 'When the issuer certificate in use expires (Unix time).',
    registers: [registry],
    collect() {
      if (current.issuer) this.set(current.issuer.notAfterMs / 1000);
    },
  });
  new Gauge({
    name: 'mutual_identity_trust_anchor_expiry_timestamp_seconds',
    help: 'When each trust anchor in the bundle expires (Unix time), by SHA-256 fingerprint.',
    labelNames: ['fingerprint'],
    registers: [registry],
    collect() {
      this.reset();
      for (const der of current.bundle.rootsDer) {
        const root = parseCertificate(der);
        this.set({ fingerprint: root.fingerprintSha256.slice(0, 16) }, root.notAfterMs / 1000);
      }
    },
  });
  const bundleListeners = new Set<() => void>();
  const bundles: BundleSource = {
    current: () => current.bundle,
    subscribe(listener) {
      bundleListeners.add(listener);
      return () => bundleListeners.delete(listener);
    },
  };
  const certifier = createCertifier({
    authenticator: createJoinTokenAuthenticator({
      verificationKey: tokenKey.publicKey,
      trustDomain: issuer.trustDomain,
      clock: config.clock,
    }),
    currentIssuer: () => current.issuer,
    currentBundle: () => current.bundle,
    audit,
    clock: config.clock,
    lifetimeMs: config.lifetimeMs,
    skewMs: config.skewMs,
    ...(config.rateLimit ? { rateLimit: config.rateLimit } : {}),
    onOutcome: (result, reason) => (result === 'issued' ? issued.inc() : refused.inc({ reason })),
  });
  // The service's own SVID, renewed like any workload's: a fresh key at 70% of its lifetime,
  // swapped with setSecureContext so open connections are not dropped.
  const issueOwnCredentials = async () => {
    const keys = await generateKeyPair();
    const svid = await issueSvid(current.issuer ?? issuer, {
      spiffeId: identityServiceId(issuer.trustDomain),
      publicKey: keys.publicKey,
      clock: config.clock,
      lifetimeMs: config.lifetimeMs,
      skewMs: config.skewMs,
      dnsNames: ['localhost', 'identity.mutual-system.svc'],
    });
    return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, svid };
  };
  const own = await issueOwnCredentials();
  const api = createIdentityApiServer({ certifier, bundles, serverCredentials: own });
  let ownRenewal: NodeJS.Timeout | undefined;
  const scheduleOwnRenewal = (notBeforeMs: number, notAfterMs: number, failures = 0) => {
    const delayMs =
      failures === 0
        ? renewalDelayMs(notBeforeMs, notAfterMs, config.clock.now())
        : backoffDelayMs(failures, 1000, 30_000);
    ownRenewal = setTimeout(() => {
      issueOwnCredentials().then(
        (next) => {
          api.setSecureContext({ key: next.key, cert: next.cert, minVersion: 'TLSv1.3' });
          scheduleOwnRenewal(next.svid.notBeforeMs, next.svid.notAfterMs);
        },
        () => scheduleOwnRenewal(notBeforeMs, notAfterMs, failures + 1),
      );
    }, delayMs);
    ownRenewal.unref();
  };
  scheduleOwnRenewal(own.svid.notBeforeMs, own.svid.notAfterMs);
  const admin = createAdminServer({
    registry,
    notReadyReason: () => (current.issuer ? undefined : 'no valid issuer loaded'),
  });
  api.listen(config.listen.port, config.listen.host);
  admin.listen(config.adminListen.port, config.adminListen.host);
  await Promise.all([once(api, 'listening'), once(admin, 'listening')]);
  const apiAddress = api.address() as AddressInfo;
  const adminAddress = admin.address() as AddressInfo;
  return {
    apiUrl: `https://${urlHost(apiAddress)}:${apiAddress.port}`,
    adminUrl: `http://${urlHost(adminAddress)}:${adminAddress.port}`,
    trustDomain: issuer.trustDomain,
    async close() {
      clearTimeout(ownRenewal);
      for (const listener of bundleListeners) listener();
      await Promise.all([closeServer(api), closeServer(admin)]);
      await audit.close();
    },
  };
}

function urlHost(address: AddressInfo): string {
  return address.family === 'IPv6' ? `[${address.address}]` : address.address;
}

function closeServer(
  server: import('node:net').Server & { closeIdleConnections?: () => void },
): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections?.();
  });
}
