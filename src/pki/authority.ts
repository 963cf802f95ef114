import { createHash, type KeyObject, X509Certificate as NodeX509Certificate, randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import type { Clock } from '../clock.ts';
import { MutualError } from '../errors.ts';
import { parseTrustDomain, trustDomainId } from '../spiffe/index.ts';
import {
  generateKeyPair,
  isSameKey,
  type KeyAlgorithm,
  type KeyPair,
  parsePrivateKeyPem,
  publicKeyDer,
} from './keys.ts';
import { decodePemOfType, encodePem } from './pem.ts';
import { signingAlgorithmFor, toCryptoKey, x509 } from './x509-library.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_ANCHOR_LIFETIME_MS = 3650 * DAY_MS;
export const DEFAULT_ISSUER_LIFETIME_MS = 365 * DAY_MS;
/** Backdating of CA certificates, so a verifier whose clock is a little behind accepts them at once. */
const CA_BACKDATE_MS = 60 * 1000;

/** A CA certificate with its key: the trust anchor, or the issuer that signs workload certificates. */
export interface CertificateAuthority {
  readonly trustDomain: string;
  readonly certificate: x509.X509Certificate;
  readonly certificatePem: string;
  readonly keys: KeyPair;
  /** Certificates between this CA and the anchor, to send after a leaf; empty for a root. */
  readonly chainPem: readonly string[];
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

export interface CreateCaOptions {
  trustDomain: string;
  clock: Clock;
  lifetimeMs?: number;
  keyAlgorithm?: KeyAlgorithm;
}

/** Creates a self-signed root: CA:true, keyCertSign|cRLSign, URI SAN spiffe://<td>. */
export async function createTrustAnchor(options: CreateCaOptions): Promise<CertificateAuthority> {
  const trustDomain = parseTrustDomain(options.trustDomain);
  const lifetimeMs = checkLifetime(options.lifetimeMs ?? DEFAULT_ANCHOR_LIFETIME_MS, 'trust anchor lifetime');
  const keys = await generateKeyPair(options.keyAlgorithm);
  const now = options.clock.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: caName('trust anchor', trustDomain, keys.publicKey),
    notBefore: new Date(now - CA_BACKDATE_MS),
    notAfter: new Date(now + lifetimeMs),
    keys: { privateKey: toCryptoKey(keys.privateKey), publicKey: toCryptoKey(keys.publicKey) },
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(toCryptoKey(keys.publicKey)),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain).uri }]),
    ],
  });
  return authorityFrom(trustDomain, certificate, keys, []);
}

/**
 * Creates the issuer (intermediate) under an anchor: CA:true with pathLen 0, so it can sign only
 * leaves, and by default a name constraint permitting only URIs of this trust domain. Its lifetime
 * is clamped to the anchor's, so it never outlives what vouches for it.
 */
export async function createIssuer(
  anchor: CertificateAuthority,
  options: CreateCaOptions & { isNameConstrained?: boolean },
): Promise<CertificateAuthority> {
  const trustDomain = parseTrustDomain(options.trustDomain);
  const lifetimeMs = checkLifetime(options.lifetimeMs ?? DEFAULT_ISSUER_LIFETIME_MS, 'issuer lifetime');
  if (anchor.trustDomain !== trustDomain) {
    throw issuerInvalid(
      `the trust anchor is for ${anchor.trustDomain}; it cannot make an issuer for ${trustDomain}`,
    );
  }
  const now = options.clock.now();
  assertCanSign(anchor, now);
  const keys = await generateKeyPair(options.keyAlgorithm);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, 0, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(toCryptoKey(keys.publicKey)),
    await x509.AuthorityKeyIdentifierExtension.create(toCryptoKey(anchor.keys.publicKey)),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: trustDomainId(trustDomain).uri }]),
  ];
  if (options.isNameConstrained ?? true) extensions.push(trustDomainNameConstraint(trustDomain));
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: caName('issuer', trustDomain, keys.publicKey),
    issuer: anchor.certificate.subjectName, // as encoded in the anchor (see buildSvidCertificate)
    notBefore: new Date(now - CA_BACKDATE_MS),
    notAfter: new Date(Math.min(now + lifetimeMs, anchor.notAfterMs)),
    publicKey: toCryptoKey(keys.publicKey),
    signingKey: toCryptoKey(anchor.keys.privateKey),
    signingAlgorithm: signingAlgorithmFor(anchor.keys.privateKey),
    extensions,
  });
  return authorityFrom(trustDomain, certificate, keys, [...anchor.chainPem]);
}

/**
 * RFC 5280 §4.2.1.10 writes a URI constraint as the host, so `cluster.local` (not
 * `spiffe://cluster.local`, which OpenSSL would match against nothing) permits exactly the
 * IDs of this trust domain.
 */
function trustDomainNameConstraint(trustDomain: string): x509.Extension {
  const constraints = new asn1X509.NameConstraints({
    permittedSubtrees: new asn1X509.GeneralSubtrees([
      new asn1X509.GeneralSubtree({
        base: new asn1X509.GeneralName({ uniformResourceIdentifier: trustDomain }),
      }),
    ]),
  });
  return new x509.Extension(asn1X509.id_ce_nameConstraints, true, AsnConvert.serialize(constraints));
}

/**
 * Loads a CA certificate and key from PEM and checks that they can sign: the certificate is a CA
 * with keyCertSign, the key is its key, and it is within its validity at the clock's time.
 * `chainPem` holds any certificates between it and the anchor (none for a two-tier PKI).
 */
export function loadAuthority(options: {
  certificatePem: string;
  privateKeyPem: string;
  clock: Clock;
  source?: string;
  /** Names the key in errors (its path); by default "<source> key". */
  keySource?: string;
  /** Required when the certificate carries no spiffe://<trust-domain> URI SAN (imported CAs). */
  trustDomain?: string;
}): CertificateAuthority {
  const source = options.source ?? 'CA certificate';
  const keySource = options.keySource ?? `${source} key`;
  // The first block is the CA; any further blocks are its chain up to the anchor.
  const [block, ...chainBlocks] = decodePemOfType(options.certificatePem, ['CERTIFICATE'], source);
  if (!block) throw new MutualError('MUTUAL_PKI_PEM_MALFORMED', `${source}: no certificate`);
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(block.der);
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CERT_MALFORMED', `${source}: the certificate cannot be decoded`, {
      cause: error,
    });
  }
  const keys = parsePrivateKeyPem(options.privateKeyPem, keySource);
  const certificateKey = publicKeyFromCertificate(certificate);
  if (!isSameKey(certificateKey, keys.publicKey)) {
    const keyIndex = chainBlocks.findIndex((chainBlock) => {
      try {
        return isSameKey(new NodeX509Certificate(chainBlock.der).publicKey, keys.publicKey);
      } catch {
        return false;
      }
    });
    const order =
      keyIndex === -1
        ? ''
        : `; it belongs to certificate ${keyIndex + 2} in the file: put the issuer's own certificate first, then its chain up to the root`;
    throw new MutualError(
      'MUTUAL_PKI_KEY_MISMATCH',
      `${source}: the private key${options.keySource === undefined ? '' : ` in ${keySource}`} does not belong to this certificate (${certificate.subject})${order}`,
    );
  }
  const basicConstraints = certificate.getExtension(x509.BasicConstraintsExtension);
  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  if (!basicConstraints?.ca) {
    throw issuerInvalid(
      `${certificateName(source, certificate)} is not a CA certificate (basicConstraints CA:FALSE or missing${certificate.subject === '' ? ': an empty subject like this is a workload certificate' : ''}), so it cannot sign; give the issuer CA's certificate and its key instead (issuer.pem and issuer.key from \`mutual ca create\`, or your intermediate CA)`,
    );
  }
  if (keyUsage && (keyUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw issuerInvalid(
      `${certificateName(source, certificate)} lacks keyUsage keyCertSign, so it cannot sign certificates`,
    );
  }
  const uri = certificate
    .getExtension(x509.SubjectAlternativeNameExtension)
    ?.names.items.find((name) => name.type === 'url')?.value;
  const certifiedDomain = uri ? parseTrustDomain(uri) : undefined;
  const trustDomain =
    options.trustDomain === undefined ? certifiedDomain : parseTrustDomain(options.trustDomain);
  if (trustDomain === undefined) {
    // Without a trust domain the issuer would sign IDs of any trust domain.
    throw new MutualError(
      'MUTUAL_PKI_ISSUER_INVALID',
      `${source}: ${certificate.subject} has no spiffe://<trust-domain> URI SAN, so the trust domain it signs for is unknown: name it with --trust-domain <name> (\`mutual identity serve\`, \`mutual install\`: for an issuer made for Linkerd, Istio or cert-manager), make the issuer with \`mutual ca issuer\` (or \`mutual ca create\`), or sign it with subjectAltName=URI:spiffe://<trust-domain> among its extensions (openssl: -extfile with that line)`,
      { detail: { reason: 'no-trust-domain' } },
    );
  }
  if (certifiedDomain !== undefined && certifiedDomain !== trustDomain) {
    throw new MutualError(
      'MUTUAL_PKI_ISSUER_INVALID',
      `${source}: ${certificate.subject} belongs to trust domain ${certifiedDomain}, not ${trustDomain}`,
      { detail: { certifiedTrustDomain: certifiedDomain } },
    );
  }
  const chainPem = chainBlocks.map((chainBlock) => encodePem('CERTIFICATE', chainBlock.der));
  const authority = authorityFrom(trustDomain, certificate, keys, chainPem);
  assertCanSign(authority, options.clock.now(), source);
  return authority;
}

function publicKeyFromCertificate(certificate: x509.X509Certificate): KeyObject {
  return new NodeX509Certificate(Buffer.from(certificate.rawData)).publicKey;
}

export function assertCanSign(authority: CertificateAuthority, nowMs: number, source = 'issuer'): void {
  if (nowMs > authority.notAfterMs) {
    throw issuerInvalid(
      `${source}: ${authority.certificate.subject} expired at ${new Date(authority.notAfterMs).toISOString()}; create or load a new issuer`,
    );
  }
  if (nowMs < authority.notBeforeMs) {
    throw issuerInvalid(
      `${source}: ${authority.certificate.subject} is not valid before ${new Date(authority.notBeforeMs).toISOString()}; check the clock`,
    );
  }
}

/** `issuer.pem (CN=…)`, or the file alone when the subject is empty (a SPIFFE leaf has none). */
function certificateName(source: string, certificate: x509.X509Certificate): string {
  return certificate.subject === '' ? source : `${source} (${certificate.subject})`;
}

function issuerInvalid(message: string): MutualError {
  return new MutualError('MUTUAL_PKI_ISSUER_INVALID', message);
}

function authorityFrom(
  trustDomain: string,
  certificate: x509.X509Certificate,
  keys: KeyPair,
  chainPem: readonly string[],
): CertificateAuthority {
  return Object.freeze({
    trustDomain,
    certificate,
    certificatePem: encodePem('CERTIFICATE', new Uint8Array(certificate.rawData)),
    keys,
    chainPem: Object.freeze([...chainPem]),
    notBeforeMs: certificate.notBefore.getTime(),
    notAfterMs: certificate.notAfter.getTime(),
  });
}

function caName(role: string, trustDomain: string, publicKey: KeyObject): string {
  // A short key fingerprint tells anchors apart during rotation, when two share a trust domain.
  const keyId = createHash('sha256').update(publicKeyDer(publicKey)).digest('hex').slice(0, 8);
  return `O=Mutual, CN=Mutual ${role} ${trustDomain} ${keyId}`;
}

/** A positive 127-bit serial: RFC 5280 wants at most 20 octets, CA/B at least 64 random bits. */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}

export function checkLifetime(lifetimeMs: number, what: string, maxMs = 100 * 365 * DAY_MS): number {
  if (!Number.isFinite(lifetimeMs) || lifetimeMs <= 0) {
    throw new MutualError('MUTUAL_PKI_LIFETIME_INVALID', `${what} must be positive, got ${lifetimeMs} ms`);
  }
  if (lifetimeMs > maxMs) {
    throw new MutualError(
      'MUTUAL_PKI_LIFETIME_INVALID',
      `${what} of ${Math.round(lifetimeMs / DAY_MS)} days is longer than the maximum of ${Math.round(maxMs / DAY_MS)} days`,
    );
  }
  return lifetimeMs;
}
