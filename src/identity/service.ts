import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createAdminServer } from '../admin/index.ts';
import type { Clock } from '../clock.ts';
import { formatDuration } from '../config/index.ts';
import { listenDualStack } from '../listen-on.ts';
import { Counter, createRegistry, Gauge, registerFileDescriptorGauges } from '../metrics/index.ts';
import {
  createPeerVerifier,
  decodePemOfType,
  generateKeyPair,
  issueSvid,
  parseCertificate,
  privateKeyToPem,
  type TrustBundle,
} from '../pki/index.ts';
import type { CaFilePaths } from '../store/index.ts';
import { MESH_TLS_GROUPS } from '../tls/index.ts';
import { backoffDelayMs, renewalDelayMs } from '../workload/index.ts';
import { openAuditLog } from './audit-log.ts';
import { caStatusRoute } from './ca-status.ts';
import { type CaReloadEvent, createCaWatcher } from './ca-watcher.ts';
import { createCertifier } from './certifier.ts';
import { type BundleSource, createIdentityApiServer } from './http-api.ts';
import { createJoinTokenAuthenticator } from './join-token.ts';
import type { RateLimit } from './rate-limiter.ts';
import { loadOrCreateJoinTokenKey } from './token-key.ts';
import {
  createChainedAuthenticator,
  createTokenReviewAuthenticator,
  type TokenReviewConfig,
} from './token-review.ts';
import { openTokenRevocationList } from './token-revocations.ts';

export interface IdentityServiceConfig {
  /** The issuer and trust-anchor files; watched, and reloaded when they change. */
  readonly ca: CaFilePaths;
  /**
   * The trust domain, required when the issuer names none in a spiffe:// URI SAN (CAs made for
   * Linkerd, Istio or cert-manager); otherwise taken from the issuer, and must match it.
   */
  readonly trustDomain?: string;
  readonly stateDir: string;
  readonly listen: { host: string; port: number };
  readonly adminListen: { host: string; port: number };
  readonly lifetimeMs: number;
  readonly skewMs: number;
  readonly rateLimit?: RateLimit;
  /** Failed authentications per client address; default DEFAULT_AUTH_FAILURE_LIMIT. */
  readonly authFailureLimit?: RateLimit;
  /** Kubernetes ServiceAccount tokens are accepted beside join tokens when this is set. */
  readonly tokenReview?: TokenReviewConfig;
  /** Handshake, headers and body deadline for each client. */
  readonly clientTimeoutMs?: number;
  /** Open API connections one client address may have; default DEFAULT_MAX_CONNECTIONS_PER_ADDRESS. */
  readonly maxConnectionsPerAddress?: number;
  /** Open API connections in all; default defaultMaxConnections() (3/4 of the descriptor limit). */
  readonly maxConnections?: number;
  /** How often the CA files are re-read in case a change notification was missed. */
  readonly caPollIntervalMs?: number;
  readonly clock: Clock;
  /** One line per event worth a human's attention (CA reloads accepted or refused). */
  readonly log?: (line: string) => void;
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
  const registry = createRegistry();
  registerFileDescriptorGauges(registry, 'the identity service');
  const reloads = {
    issuer: new Counter({
      name: 'mutual_identity_issuer_reload_total',
      help: 'Changed issuer files checked, by result (accepted, refused: the old issuer keeps serving).',
      labelNames: ['result'],
      registers: [registry],
    }),
    'trust-anchors': new Counter({
      name: 'mutual_identity_trust_anchors_reload_total',
      help: 'Changed trust-anchor files checked, by result (accepted, refused: the old anchors keep serving).',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
  const bundleListeners = new Set<() => void>();
  let onIssuerChange = () => {};
  const onEvent = (event: CaReloadEvent) => {
    reloads[event.what].inc({ result: event.result });
    config.log?.(
      `ca reload: ${event.what} ${event.result}${event.code ? ` [${event.code}]` : ''}: ${event.message}\n`,
    );
  };
  const ca = await createCaWatcher({
    files: config.ca,
    clock: config.clock,
    ...(config.trustDomain === undefined ? {} : { trustDomain: config.trustDomain }),
    issuedLifetimeMs: config.lifetimeMs + config.skewMs,
    ...(config.caPollIntervalMs === undefined ? {} : { pollIntervalMs: config.caPollIntervalMs }),
    onEvent,
    onChange: (_state, changed) => {
      if (changed.bundle) for (const listener of bundleListeners) listener();
      if (changed.issuer) onIssuerChange();
    },
  });
  const trustDomain = ca.current().issuer.trustDomain;
  const tokenKey = await loadOrCreateJoinTokenKey(config.stateDir);
  const audit = openAuditLog(join(config.stateDir, 'audit.log'));
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
  new Gauge({
    name: 'mutual_identity_issuer_expiry_timestamp_seconds',
    help: 'When the issuer certificate in use expires (Unix time).',
    registers: [registry],
    collect() {
      this.set(ca.current().issuer.notAfterMs / 1000);
    },
  });
  new Gauge({
    name: 'mutual_identity_trust_anchor_expiry_timestamp_seconds',
    help: 'When each trust anchor in the bundle expires (Unix time), by SHA-256 fingerprint.',
    labelNames: ['fingerprint'],
    registers: [registry],
    collect() {
      this.reset();
      for (const der of ca.current().bundle.rootsDer) {
        const root = parseCertificate(der);
        this.set({ fingerprint: root.fingerprintSha256.slice(0, 16) }, root.notAfterMs / 1000);
      }
    },
  });
  new Gauge({
    name: 'mutual_identity_trust_bundle_sequence',
    help: 'The sequence number of the trust bundle served; it grows with every accepted anchor change.',
    registers: [registry],
    collect() {
      this.set(ca.current().bundle.sequence);
    },
  });
  const bundles: BundleSource = {
    current: () => ca.current().bundle,
    subscribe(listener) {
      bundleListeners.add(listener);
      return () => bundleListeners.delete(listener);
    },
  };
  const revocations = await openTokenRevocationList(config.stateDir, (error) =>
    config.log?.(`token revocations: [${error.code}] ${error.message}\n`),
  );
  const joinTokens = createJoinTokenAuthenticator({
    verificationKey: tokenKey.publicKey,
    trustDomain,
    clock: config.clock,
    revocations,
  });
  const certifier = createCertifier({
    authenticator: createChainedAuthenticator({
      joinTokens,
      ...(config.tokenReview
        ? { kubernetes: createTokenReviewAuthenticator({ ...config.tokenReview, trustDomain }) }
        : {}),
    }),
    currentIssuer: () => ca.current().issuer,
    currentBundle: () => ca.current().bundle,
    audit,
    clock: config.clock,
    lifetimeMs: config.lifetimeMs,
    skewMs: config.skewMs,
    ...(config.rateLimit ? { rateLimit: config.rateLimit } : {}),
    ...(config.authFailureLimit ? { authFailureLimit: config.authFailureLimit } : {}),
    onOutcome: (result, reason) => (result === 'issued' ? issued.inc() : refused.inc({ reason })),
  });
  // The service's own SVID, renewed like any workload's: a fresh key at 70% of its lifetime,
  // swapped with setSecureContext so open connections are not dropped.
  // Its DNS names serve clients outside the mesh (curl); a CA whose name constraints exclude them
  // (a root permitting only DNS names under the cluster domain) gets an SVID without them, which
  // workloads, checking the SPIFFE ID alone, still accept.
  const issueOwnCredentials = async () => {
    const keys = await generateKeyPair();
    const { issuer, bundle } = ca.current();
    const sign = (dnsNames: readonly string[]) =>
      issueSvid(issuer, {
        spiffeId: identityServiceId(trustDomain),
        publicKey: keys.publicKey,
        clock: config.clock,
        lifetimeMs: config.lifetimeMs,
        skewMs: config.skewMs,
        dnsNames,
      });
    let svid = await sign(OWN_DNS_NAMES);
    if (isOutsideNameConstraints(svid.chainPem, bundle, config.clock)) svid = await sign([]);
    return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, svid };
  };
  const own = await issueOwnCredentials();
  const api = createIdentityApiServer({
    certifier,
    bundles,
    serverCredentials: own,
    ...(config.clientTimeoutMs === undefined ? {} : { clientTimeoutMs: config.clientTimeoutMs }),
    ...(config.maxConnectionsPerAddress === undefined
      ? {}
      : { maxConnectionsPerAddress: config.maxConnectionsPerAddress }),
    ...(config.maxConnections === undefined ? {} : { maxConnections: config.maxConnections }),
  });
  new Gauge({
    name: 'mutual_identity_connections_open',
    help: 'Connections open to the API port, by what they are doing (handshake, headers: no request yet, idle, held: a bundle long poll, body: still arriving, answering). At --max-connections the oldest but answering ones are closed for new ones.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [state, count] of Object.entries(api.connections.openByState())) this.set({ state }, count);
    },
  });
  let ownRenewal: NodeJS.Timeout | undefined;
  // Each renewal run has a generation; a run overtaken by a newer one (issuer changed) is dropped.
  let generation = 0;
  const renewOwn = (delayMs: number, failures: number) => {
    clearTimeout(ownRenewal);
    const mine = ++generation;
    ownRenewal = setTimeout(() => {
      issueOwnCredentials().then(
        (next) => {
          if (mine !== generation) return;
          // setSecureContext replaces every option of the context: the floor and groups are given again.
          api.setSecureContext({
            key: next.key,
            cert: next.cert,
            minVersion: 'TLSv1.3',
            ecdhCurve: MESH_TLS_GROUPS,
          });
          renewOwn(renewalDelayMs(next.svid.notBeforeMs, next.svid.notAfterMs, config.clock.now()), 0);
        },
        () => {
          if (mine === generation) renewOwn(backoffDelayMs(failures, 1000, 30_000), failures + 1);
        },
      );
    }, delayMs);
    ownRenewal.unref();
  };
  renewOwn(renewalDelayMs(own.svid.notBeforeMs, own.svid.notAfterMs, config.clock.now()), 0);
  // A new issuer re-issues the service's own SVID at once, so it chains to the anchors in force.
  onIssuerChange = () => renewOwn(0, 0);
  // No certificate outlives the issuer, so the mesh stops when it expires: one ending within 60
  // days (as `mutual check` warns) is said in the log at start, then daily, hourly in its last day.
  let issuerWarning: NodeJS.Timeout | undefined;
  const warnOfIssuerEnd = () => {
    const { issuer } = ca.current();
    const leftMs = issuer.notAfterMs - config.clock.now();
    if (leftMs > 0 && leftMs < ISSUER_WARNING_MS)
      config.log?.(
        `issuer ${issuer.certificate.subject} expires in ${formatDuration(leftMs)} (${new Date(issuer.notAfterMs).toISOString()}): no certificate outlives it, and every workload loses its own then. Make the next one, with no restart: \`mutual ca issuer --ca DIR --out next\` under the same anchor, and copy its issuer.crt and issuer.key over ${config.ca.issuerCertificate} and ${config.ca.issuerKey}\n`,
      );
    issuerWarning = setTimeout(warnOfIssuerEnd, leftMs < 86_400_000 ? 3_600_000 : 86_400_000);
    issuerWarning.unref();
  };
  warnOfIssuerEnd();
  const admin = createAdminServer({
    registry,
    notReadyReason: () =>
      config.clock.now() > ca.current().issuer.notAfterMs ? 'the issuer has expired' : undefined,
    // What is in force, beside the files: `mutual check` compares the two.
    routes: { 'GET /ca': caStatusRoute(() => ca.status()) },
  });
  const stop = async () => {
    generation++;
    clearTimeout(ownRenewal);
    clearTimeout(issuerWarning);
    ca.close();
    for (const listener of bundleListeners) listener();
    await Promise.all([closeServer(api), closeServer(admin)]);
    await audit.close();
  };
  // A port that cannot be bound stops everything started above (the CA watcher, the renewal
  // timer), so the command ends with the error instead of living on without a listener.
  // On 0.0.0.0 (as installed), [::] too: in an IPv6-only cluster the sidecars reach the Service,
  // and the kubelet the admin port, at the pod's IPv6 address.
  const code = 'MUTUAL_IDENTITY_LISTEN_FAILED';
  const listening = await Promise.allSettled([
    listenDualStack(api, config.listen, { code, what: 'API, --listen' }),
    listenDualStack(admin, config.adminListen, { code, what: 'admin, --admin-listen' }),
  ]);
  const failed = listening.find((result) => result.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const apiAddress = api.address() as AddressInfo;
  const adminAddress = admin.address() as AddressInfo;
  return {
    apiUrl: `https://${urlHost(apiAddress)}:${apiAddress.port}`,
    adminUrl: `http://${urlHost(adminAddress)}:${adminAddress.port}`,
    trustDomain,
    close: stop,
  };
}

const OWN_DNS_NAMES = ['localhost', 'identity.mutual-system.svc'];
/** An issuer with less than this left is warned about in the log (mutual check's threshold). */
const ISSUER_WARNING_MS = 60 * 86_400_000;

function isOutsideNameConstraints(chainPem: string, bundle: TrustBundle, clock: Clock): boolean {
  const chain = decodePemOfType(chainPem, ['CERTIFICATE'], 'identity service certificate');
  const verdict = createPeerVerifier({ anchors: bundle.rootsDer, clock }).verifySvid(
    chain.map((block) => block.der),
  );
  return !verdict.ok && verdict.code === 'MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED';
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
