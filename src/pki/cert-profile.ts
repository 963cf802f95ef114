// The per-certificate rules of a path, by the role a certificate plays in it (leaf, intermediate,
// trust anchor). RFC 5280 profile plus the CA/Browser Forum rules that x509-limbo checks; where
// SPIFFE (X509-SVID) and the Web PKI disagree, the leaf profile says which applies.
import { describeCertificate as describe, OID, type ParsedCertificate } from './certificate.ts';
import { type VerifyFailure, verifyFailure } from './verify-failure.ts';

export type LeafProfile = 'webpki' | 'svid';

/** Extensions whose meaning the verifier enforces, so they may be critical. */
const UNDERSTOOD_EXTENSIONS = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.authorityInfoAccess,
]);

/** RFC 5280 says these MUST be non-critical; a critical one signals a broken issuer. */
const MUST_BE_NON_CRITICAL = [OID.subjectKeyIdentifier, OID.authorityKeyIdentifier, OID.authorityInfoAccess];

/** Signature algorithms a certificate may be signed with (CA/B Forum 7.1.3.2, plus Ed25519). */
const ALLOWED_SIGNATURE_ALGORITHMS = new Set<string>([
  '1.2.840.113549.1.1.11', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12', // sha384WithRSAEncryption
  '1.2.840.113549.1.1.13', // sha512WithRSAEncryption
  '1.2.840.113549.1.1.10', // RSASSA-PSS
  '1.2.840.10045.4.3.2', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3', // ecdsa-with-SHA384
  '1.2.840.10045.4.3.4', // ecdsa-with-SHA512
  '1.3.101.112', // Ed25519
]);

/** Rules for every certificate, whatever its role. */
export function checkCommon(cert: ParsedCertificate): VerifyFailure | undefined {
  const who = describe(cert);
  if (cert.version !== 3) {
    return verifyFailure(
      'MUTUAL_PKI_CERT_MALFORMED',
      `${who} is X.509 v${cert.version}; only v3 is accepted`,
    );
  }
  const defect = cert.defects[0];
  if (defect !== undefined)
    return verifyFailure('MUTUAL_PKI_CERT_MALFORMED', `${who} is malformed: ${defect}`);
  if (cert.isIssuerEmpty)
    return verifyFailure('MUTUAL_PKI_CERT_MALFORMED', `${who} has an empty issuer name`);
  for (const extension of cert.extensions) {
    if (extension.critical && !UNDERSTOOD_EXTENSIONS.has(extension.oid)) {
      return invalid(`${who} has an unknown critical extension ${extension.oid}`);
    }
    if (extension.critical && MUST_BE_NON_CRITICAL.includes(extension.oid as never)) {
      return invalid(`${who} marks extension ${extension.oid} critical, which RFC 5280 forbids`);
    }
  }
  const aki = cert.authorityKeyIdentifier;
  if (aki !== undefined) {
    if (aki.keyIdentifier === undefined)
      return invalid(`${who} has an authorityKeyIdentifier without keyIdentifier`);
    if (aki.hasAuthorityCertIssuer || aki.hasAuthorityCertSerialNumber) {
      return invalid(
        `${who} has authorityCertIssuer/authorityCertSerialNumber in its authorityKeyIdentifier`,
      );
    }
  }
  if (cert.isSubjectEmpty) {
    const san = cert.extensions.find((extension) => extension.oid === OID.subjectAltName);
    if (san === undefined || !san.critical) {
      return invalid(`${who} has an empty subject, so it needs a critical subjectAltName`);
    }
  }
  return undefined;
}

/** Rules for the certificate the peer presented. */
export function checkLeaf(cert: ParsedCertificate, profile: LeafProfile): VerifyFailure | undefined {
  const common = checkCommon(cert);
  if (common !== undefined) return common;
  const who = describe(cert);
  if (cert.isCa) {
    return verifyFailure('MUTUAL_PKI_CA_AS_LEAF', `${who} is a CA certificate (basicConstraints CA:true)`);
  }
  const forbiddenUsages =
    profile === 'svid' ? (['keyCertSign', 'cRLSign'] as const) : (['keyCertSign'] as const);
  for (const usage of forbiddenUsages) {
    if (cert.keyUsage?.has(usage)) {
      return verifyFailure(
        'MUTUAL_PKI_CA_AS_LEAF',
        `${who} has keyUsage ${usage}, which only CA certificates may`,
      );
    }
  }
  if (cert.nameConstraints !== undefined) {
    return invalid(`${who} has name constraints, which only CA certificates may carry`);
  }
  if (cert.authorityKeyIdentifier === undefined) {
    return invalid(`${who} has no authorityKeyIdentifier (RFC 5280 §4.2.1.1)`);
  }
  if (!isAllowedKey(cert.publicKeyAlgorithm)) {
    return invalid(
      `${who} has a ${cert.publicKeyAlgorithm} key; use ECDSA P-256/P-384/P-521, Ed25519 or RSA >= 2048`,
    );
  }
  if (profile === 'webpki') {
    const critical = (oid: string) => cert.extensions.some((e) => e.oid === oid && e.critical);
    if (!cert.isSubjectEmpty && critical(OID.subjectAltName)) {
      return invalid(`${who} has a critical subjectAltName beside a non-empty subject (CA/B 7.1.2.7.12)`);
    }
    if (critical(OID.extKeyUsage)) return invalid(`${who} has a critical extKeyUsage (CA/B 7.1.2.7.6)`);
    if (cert.extKeyUsage?.includes(OID.anyExtendedKeyUsage)) {
      return verifyFailure(
        'MUTUAL_PKI_KEY_USAGE_INVALID',
        `${who} has anyExtendedKeyUsage (CA/B 7.1.2.7.10)`,
      );
    }
  }
  return undefined;
}

/**
 * Rules for an intermediate or trust anchor. A trust anchor is held to the same profile: an
 * anchor that is not a proper CA certificate is a configuration mistake worth surfacing.
 */
export function checkIssuer(cert: ParsedCertificate, isAnchor: boolean): VerifyFailure | undefined {
  const common = checkCommon(cert);
  if (common !== undefined) return common;
  const who = `${isAnchor ? 'trust anchor' : 'intermediate'} ${describe(cert)}`;
  if (cert.isSubjectEmpty) return invalid(`${who} has an empty subject`);
  if (!cert.isCa) return invalid(`${who} is not a CA (basicConstraints CA:true is missing)`);
  if (cert.basicConstraintsCritical !== true) return invalid(`${who} has a non-critical basicConstraints`);
  // RFC 5280 6.1.4 (n): keyCertSign is checked only where keyUsage is present. `openssl req -x509`
  // makes roots with none, and OpenSSL, Go, rustls (Linkerd) and BoringSSL (Envoy) take them.
  if (cert.keyUsage !== undefined && !cert.keyUsage.has('keyCertSign')) {
    return invalid(`${who} has keyUsage without keyCertSign`);
  }
  if (cert.subjectKeyIdentifier === undefined) return invalid(`${who} has no subjectKeyIdentifier`);
  const nc = cert.nameConstraints;
  if (nc !== undefined && !nc.permitted?.length && !nc.excluded?.length) {
    return invalid(`${who} has name constraints with neither permitted nor excluded subtrees`);
  }
  if (!isAllowedKey(cert.publicKeyAlgorithm)) {
    return invalid(`${who} has a ${cert.publicKeyAlgorithm} key, which may not sign certificates`);
  }
  const akid = cert.authorityKeyIdentifier?.keyIdentifier;
  if (isSelfSigned(cert)) {
    if (akid !== undefined && akid !== cert.subjectKeyIdentifier) {
      return invalid(
        `${who} is self-signed but its authorityKeyIdentifier differs from its subjectKeyIdentifier`,
      );
    }
  } else if (akid === undefined) {
    return invalid(`${who} is not self-signed and has no authorityKeyIdentifier`);
  }
  return undefined;
}

export function isAllowedSignatureAlgorithm(oid: string): boolean {
  return ALLOWED_SIGNATURE_ALGORITHMS.has(oid);
}

/** CA/B Forum 7.1.3.1 key types, plus Ed25519 (fine for a private mesh, never seen in the Web PKI). */
function isAllowedKey(algorithm: string): boolean {
  if (algorithm === 'EC P-256' || algorithm === 'EC P-384' || algorithm === 'EC P-521') return true;
  if (algorithm === 'Ed25519') return true;
  const rsa = /^RSA(?:-PSS)? (\d+)$/.exec(algorithm);
  return rsa !== null && Number(rsa[1]) >= 2048;
}

const selfSigned = new WeakMap<ParsedCertificate, boolean>();

/** Self-issued and signed by its own key; remembered because it costs a signature check. */
export function isSelfSigned(cert: ParsedCertificate): boolean {
  let known = selfSigned.get(cert);
  if (known === undefined) {
    known = cert.isSelfIssued && verifiesWith(cert, cert);
    selfSigned.set(cert, known);
  }
  return known;
}

/** Whether `issuer`'s key verifies `child`'s signature; false (never a throw) for odd keys. */
export function verifiesWith(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  try {
    return child.native.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function invalid(message: string): VerifyFailure {
  return verifyFailure('MUTUAL_PKI_CHAIN_INVALID', message);
}
