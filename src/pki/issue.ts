import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type { Clock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe/index.ts';
import {
  assertCanSign,
  type CertificateAuthority,
  checkLifetime,
  DAY_MS,
  randomSerialHex,
} from './authority.ts';
import { describeKey, type KeyDescription } from './keys.ts';
import { encodePem } from './pem.ts';
import { signingAlgorithmFor, toCryptoKey, x509 } from './x509-library.ts';

export const DEFAULT_SVID_LIFETIME_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_SVID_SKEW_MS = 20 * 1000;
/** Istio's MAX_WORKLOAD_CERT_TTL; a "short-lived" certificate beyond this is a mistake. */
export const MAX_SVID_LIFETIME_MS = 90 * DAY_MS;
const MAX_SKEW_MS = 60 * 60 * 1000;

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export interface IssueSvidOptions {
  spiffeId: string;
  /** The workload's public key, from its admitted CSR (or generated for `mutual cert issue`). */
  publicKey: KeyObject;
  clock: Clock;
  lifetimeMs?: number;
  skewMs?: number;
  /** Extra DNS SANs for apps outside the mesh that check host names (e.g. curl, nginx). */
  dnsNames?: readonly string[];
}

export interface IssuedSvid {
  readonly spiffeId: string;
  readonly serialNumber: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** The leaf alone. */
  readonly certificatePem: string;
  /** Leaf then the issuer and any further intermediates: what a TLS peer presents. */
  readonly chainPem: string;
  /** True when the lifetime was cut short so as not to outlive the issuer. */
  readonly isClampedToIssuer: boolean;
}

/**
 * Signs an X.509-SVID meeting every MUST of the SPIFFE X509-SVID spec: exactly one URI SAN (the
 * SPIFFE ID, critical since the subject is empty), CA:false, keyUsage digitalSignature
 * (critical), EKU serverAuth+clientAuth, validity [now - skew, now + lifetime + skew] and never
 * past the issuer's notAfter.
 */
export async function issueSvid(
  issuer: CertificateAuthority,
  options: IssueSvidOptions,
): Promise<IssuedSvid> {
  const plan = planSvid(issuer, options);
  const serialNumber = randomSerialHex();
  const certificate = await buildSvidCertificate(issuer, plan, serialNumber, options.publicKey);
  return issuedSvidFrom(issuer, plan, serialNumber, new Uint8Array(certificate.rawData));
}

/** What an SVID will say, once every check has passed; shared with the fast signer (svid-template.ts). */
export interface SvidPlan {
  readonly id: SpiffeId;
  /** Validated and lower-cased, in the order given. */
  readonly dnsNames: readonly string[];
  readonly keyDescription: KeyDescription;
  /** Whole seconds, as the certificate states them. */
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly isClampedToIssuer: boolean;
}

/** Every check issuance makes, in order, and the validity window; signs nothing. */
export function planSvid(issuer: CertificateAuthority, options: IssueSvidOptions): SvidPlan {
  const id = parseSpiffeId(options.spiffeId);
  if (id.path === '') {
    throw new MutualError(
      'MUTUAL_SPIFFE_ID_INVALID',
      `${id.uri} is a trust domain ID; a workload certificate needs a path, e.g. ${id.uri}/ns/default/sa/web`,
      { detail: { rule: 'path-missing' } },
    );
  }
  if (issuer.trustDomain !== '' && id.trustDomain !== issuer.trustDomain) {
    throw new MutualError(
      'MUTUAL_PKI_TRUST_DOMAIN_REJECTED',
      `${id.uri} is not in the issuer's trust domain ${issuer.trustDomain}`,
    );
  }
  const lifetimeMs = checkLifetime(
    options.lifetimeMs ?? DEFAULT_SVID_LIFETIME_MS,
    'certificate lifetime',
    MAX_SVID_LIFETIME_MS,
  );
  const skewMs = options.skewMs ?? DEFAULT_SVID_SKEW_MS;
  if (!Number.isFinite(skewMs) || skewMs < 0 || skewMs > MAX_SKEW_MS) {
    throw new MutualError(
      'MUTUAL_PKI_LIFETIME_INVALID',
      `clock skew allowance must be 0 to 1h, got ${skewMs} ms`,
    );
  }
  const now = options.clock.now();
  assertCanSign(issuer, now);
  const keyDescription = describeKey(options.publicKey, 'workload key');
  const notBeforeMs = Math.max(now - skewMs, issuer.notBeforeMs);
  const wantedNotAfterMs = now + lifetimeMs + skewMs;
  const notAfterMs = Math.min(wantedNotAfterMs, issuer.notAfterMs);
  const dnsNames = (options.dnsNames ?? []).map(checkDnsName);
  return {
    id,
    dnsNames,
    keyDescription,
    // x509 stores seconds; drop the milliseconds so what we report is what the certificate says.
    notBeforeMs: Math.floor(notBeforeMs / 1000) * 1000,
    notAfterMs: Math.floor(notAfterMs / 1000) * 1000,
    isClampedToIssuer: notAfterMs < wantedNotAfterMs,
  };
}

/** The SVID's certificate, built and signed by @peculiar/x509: the one definition of its structure. */
export async function buildSvidCertificate(
  issuer: CertificateAuthority,
  plan: SvidPlan,
  serialNumber: string,
  publicKey: KeyObject,
): Promise<x509.X509Certificate> {
  const usages =
    plan.keyDescription.kind === 'rsa'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: plan.id.uri }];
  for (const dnsName of plan.dnsNames) names.push({ type: 'dns', value: dnsName });
  const publicCryptoKey = toCryptoKey(publicKey);
  return x509.X509CertificateGenerator.create({
    serialNumber,
    subject: '',
    // The issuer's subject as it is encoded (UTF8String from OpenSSL, PrintableString from Go):
    // re-encoding its text gives other bytes, and peers that match names byte for byte (ours, Go)
    // then find no issuer for the leaf.
    issuer: issuer.certificate.subjectName,
    notBefore: new Date(plan.notBeforeMs),
    notAfter: new Date(plan.notAfterMs),
    publicKey: publicCryptoKey,
    signingKey: toCryptoKey(issuer.keys.privateKey),
    signingAlgorithm: signingAlgorithmFor(issuer.keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usages, true),
      new x509.ExtendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH]),
      new x509.SubjectAlternativeNameExtension(names, true),
      await x509.SubjectKeyIdentifierExtension.create(publicCryptoKey),
      await x509.AuthorityKeyIdentifierExtension.create(toCryptoKey(issuer.keys.publicKey)),
    ],
  });
}

export function issuedSvidFrom(
  issuer: CertificateAuthority,
  plan: SvidPlan,
  serialNumber: string,
  certificateDer: Uint8Array,
): IssuedSvid {
  const certificatePem = encodePem('CERTIFICATE', certificateDer);
  return {
    spiffeId: plan.id.uri,
    serialNumber,
    notBeforeMs: plan.notBeforeMs,
    notAfterMs: plan.notAfterMs,
    certificatePem,
    chainPem: [certificatePem, issuer.certificatePem, ...issuer.chainPem].join(''),
    isClampedToIssuer: plan.isClampedToIssuer,
  };
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function checkDnsName(name: string): string {
  const lower = name.toLowerCase();
  // An address passes the label syntax, but as a DNS SAN it matches nothing: curl, OpenSSL, Go
  // and browsers compare an IP they dial with IP SANs only.
  const address = lower.replace(/^\[(.*)\]$/, '$1');
  if (isIP(address) !== 0) {
    const dialed = isIP(address) === 6 ? `[${address}]` : address;
    throw new MutualError(
      'MUTUAL_PKI_DNS_NAME_INVALID',
      `${JSON.stringify(name)} is an IP address, not a DNS name: a client that dials an IP address checks it against IP SANs only, so this SAN would match no client; give a name and dial that (curl --resolve web.demo:PORT:${dialed} https://web.demo:PORT/ with --dns web.demo), or skip the host-name check as mesh peers do (curl -k or --pinnedpubkey)`,
    );
  }
  if (lower.length > 253 || !DNS_NAME.test(lower)) {
    throw new MutualError(
      'MUTUAL_PKI_DNS_NAME_INVALID',
      `${JSON.stringify(name)} is not a valid DNS name (letters, digits and "-" in dot-separated labels, optionally starting with "*.")`,
    );
  }
  return lower;
}
