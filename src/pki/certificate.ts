// A certificate decoded once into plain facts (names, usages, constraints, key) that the
// verifier, `mutual cert inspect` and the CA read. Decoding records defects instead of judging
// them: whether a defect is fatal depends on the role the certificate plays in a path.
import 'reflect-metadata';
import { createHash, type KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { MutualError } from '../errors.ts';
import {
  decodeGeneralNames,
  decodeNameConstraints,
  formatIpAddress,
  type GeneralNameEntry,
  isSingleTlv,
  type NameConstraintsValue,
} from './general-names.ts';
import { decodePemOfType } from './pem.ts';

export type { GeneralNameEntry, NameConstraintsValue } from './general-names.ts';

export type KeyUsageName =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign'
  | 'encipherOnly'
  | 'decipherOnly';

const KEY_USAGE_BITS: readonly KeyUsageName[] = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
];

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

export interface CertificateExtensionInfo {
  readonly oid: string;
  readonly critical: boolean;
}

export interface AuthorityKeyIdentifierInfo {
  /** Hex, or undefined when the field is absent. */
  readonly keyIdentifier: string | undefined;
  readonly hasAuthorityCertIssuer: boolean;
  readonly hasAuthorityCertSerialNumber: boolean;
}

export interface ParsedCertificate {
  readonly der: Uint8Array;
  readonly fingerprintSha256: string;
  /** 1, 2 or 3 (X.509 v3 is the only one the verifier accepts). */
  readonly version: number;
  /** Hex of the DER INTEGER content, as OpenSSL prints it. */
  readonly serialNumber: string;
  readonly subject: string;
  readonly issuer: string;
  /** Hex of the DER Name; issuer/subject chaining compares these. */
  readonly subjectNameKey: string;
  readonly issuerNameKey: string;
  readonly isSubjectEmpty: boolean;
  readonly isIssuerEmpty: boolean;
  /** Subject and issuer are the same name (not necessarily self-signed). */
  readonly isSelfIssued: boolean;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** OID of the outer signatureAlgorithm. */
  readonly signatureAlgorithm: string;
  readonly publicKey: KeyObject;
  /** e.g. 'EC P-256', 'RSA 2048', 'Ed25519', 'DSA 3072'. */
  readonly publicKeyAlgorithm: string;
  readonly isCa: boolean;
  readonly pathLength: number | undefined;
  /** undefined when the basicConstraints extension is absent. */
  readonly basicConstraintsCritical: boolean | undefined;
  /** undefined when the keyUsage extension is absent (RFC 5280: no restriction). */
  readonly keyUsage: ReadonlySet<KeyUsageName> | undefined;
  /** OIDs; undefined when the extKeyUsage extension is absent. */
  readonly extKeyUsage: readonly string[] | undefined;
  readonly subjectAltNames: readonly GeneralNameEntry[];
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly emails: readonly string[];
  readonly subjectKeyIdentifier: string | undefined;
  readonly authorityKeyIdentifier: AuthorityKeyIdentifierInfo | undefined;
  readonly nameConstraints: NameConstraintsValue | undefined;
  readonly extensions: readonly CertificateExtensionInfo[];
  /** Encoding rules the certificate breaks without being unreadable (RFC 5280 §4.1, §4.2). */
  readonly defects: readonly string[];
  /** Node's view of the same bytes; signatures are checked natively with `verify(issuerKey)`. */
  readonly native: NodeX509Certificate;
}

/**
 * Certificates decoded again and again across credential generations (anchors, issuers, the
 * workload's own chain) stay decoded. Peer leaves within a generation are held by that
 * generation's verifier, so this cache needs no room for them: every renewal brings new leaves,
 * and each entry keeps ~10 KB (the decoded fields and a native X509), so a large limit only
 * filled up with expired ones (2048 of them, ~20 MB, in a sidecar renewing for long enough).
 */
const CACHE_LIMIT = 256;
const cache = new Map<string, ParsedCertificate>();

/** Decodes a DER certificate, reusing an earlier result for the same bytes. */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const fingerprint = createHash('sha256').update(der).digest('hex');
  const cached = cache.get(fingerprint);
  if (cached !== undefined) {
    // Re-insert so the map's insertion order doubles as least-recently-used order.
    cache.delete(fingerprint);
    cache.set(fingerprint, cached);
    return cached;
  }
  const parsed = decode(new Uint8Array(der), fingerprint);
  cache.set(fingerprint, parsed);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  return parsed;
}

/** Decodes every CERTIFICATE block of a PEM text; `source` names the file in errors. */
export function parseCertificatesPem(text: string, source: string): ParsedCertificate[] {
  return decodePemOfType(text, ['CERTIFICATE'], source).map((block, index) => {
    try {
      return parseCertificate(block.der);
    } catch (error) {
      throw new MutualError(
        'MUTUAL_PKI_CERT_MALFORMED',
        `${source}: certificate #${index + 1} is not valid DER: ${(error as Error).message}`,
        { cause: error },
      );
    }
  });
}

/** A short human label for messages: subject and serial. */
export function describeCertificate(cert: ParsedCertificate): string {
  const subject = cert.subject === '' ? '(empty subject)' : `"${cert.subject}"`;
  return `certificate ${subject} (serial ${cert.serialNumber})`;
}

function decode(der: Uint8Array, fingerprint: string): ParsedCertificate {
  let asn: asn1X509.Certificate;
  let native: NodeX509Certificate;
  try {
    if (!isSingleTlv(der))
      throw new Error('the bytes are not exactly one DER SEQUENCE (truncated or trailing data)');
    asn = AsnConvert.parse(der, asn1X509.Certificate);
    native = new NodeX509Certificate(der);
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CERT_MALFORMED', `not a DER X.509 certificate: ${reason(error)}`, {
      cause: error,
    });
  }
  try {
    return decodeFields(der, fingerprint, asn, native);
  } catch (error) {
    if (error instanceof MutualError) throw error;
    throw new MutualError(
      'MUTUAL_PKI_CERT_MALFORMED',
      `certificate has a malformed field: ${reason(error)}`,
      {
        cause: error,
      },
    );
  }
}

function decodeFields(
  der: Uint8Array,
  fingerprint: string,
  asn: asn1X509.Certificate,
  native: NodeX509Certificate,
): ParsedCertificate {
  const tbs = asn.tbsCertificate;
  const defects: string[] = [];
  const subjectNameKey = Buffer.from(AsnConvert.serialize(tbs.subject)).toString('hex');
  const issuerNameKey = Buffer.from(AsnConvert.serialize(tbs.issuer)).toString('hex');
  const serial = new Uint8Array(tbs.serialNumber);
  if (serial.every((byte) => byte === 0)) defects.push('the serial number is zero');
  if ((serial[0] ?? 0) & 0x80) defects.push('the serial number is negative');
  if (serial.length > 21 || (serial.length === 21 && serial[0] !== 0)) {
    defects.push('the serial number is longer than 20 octets');
  }
  if (!sameAlgorithm(tbs.signature, asn.signatureAlgorithm)) {
    defects.push('signatureAlgorithm differs from the signature field inside tbsCertificate');
  }

  const extensions: CertificateExtensionInfo[] = [];
  const values = new Map<string, Uint8Array>();
  for (const extension of tbs.extensions ?? []) {
    if (values.has(extension.extnID)) defects.push(`extension ${extension.extnID} appears twice`);
    extensions.push({ oid: extension.extnID, critical: extension.critical });
    values.set(extension.extnID, new Uint8Array(extension.extnValue.buffer));
  }
  const parseExt = <T>(oid: string, type: new () => T): T | undefined => {
    const value = values.get(oid);
    return value === undefined ? undefined : AsnConvert.parse(value, type);
  };

  const basic = parseExt(OID.basicConstraints, asn1X509.BasicConstraints);
  const keyUsageBits = parseExt(OID.keyUsage, asn1X509.KeyUsage)?.toNumber();
  const eku = parseExt(OID.extKeyUsage, asn1X509.ExtendedKeyUsage);
  const ski = parseExt(OID.subjectKeyIdentifier, asn1X509.SubjectKeyIdentifier);
  const aki = parseExt(OID.authorityKeyIdentifier, asn1X509.AuthorityKeyIdentifier);
  const aia = parseExt(OID.authorityInfoAccess, asn1X509.AuthorityInfoAccessSyntax);
  if (aia !== undefined && aia.length === 0) defects.push('authorityInfoAccess is empty');
  const sanValue = values.get(OID.subjectAltName);
  const subjectAltNames = sanValue === undefined ? [] : decodeGeneralNames(sanValue);
  for (const name of subjectAltNames) {
    if (name.type === 'ip' && name.bytes.length !== 4 && name.bytes.length !== 16) {
      defects.push(`an IP address SAN is ${name.bytes.length} bytes long (expected 4 or 16)`);
    }
  }
  const ncValue = values.get(OID.nameConstraints);

  const critical = (oid: string) => extensions.find((extension) => extension.oid === oid)?.critical;
  const namesOf = (type: GeneralNameEntry['type']) =>
    subjectAltNames.filter((name) => name.type === type).map((name) => name.value);
  return Object.freeze({
    der,
    fingerprintSha256: fingerprint,
    version: tbs.version + 1,
    serialNumber: Buffer.from(serial).toString('hex'),
    subject: new x509.Name(tbs.subject).toString(),
    issuer: new x509.Name(tbs.issuer).toString(),
    subjectNameKey,
    issuerNameKey,
    isSubjectEmpty: tbs.subject.length === 0,
    isIssuerEmpty: tbs.issuer.length === 0,
    isSelfIssued: subjectNameKey === issuerNameKey,
    notBeforeMs: tbs.validity.notBefore.getTime().getTime(),
    notAfterMs: tbs.validity.notAfter.getTime().getTime(),
    signatureAlgorithm: asn.signatureAlgorithm.algorithm,
    publicKey: native.publicKey,
    publicKeyAlgorithm: describeKey(native.publicKey),
    isCa: basic?.cA === true,
    pathLength: basic?.cA === true ? basic.pathLenConstraint : undefined,
    basicConstraintsCritical: critical(OID.basicConstraints),
    keyUsage:
      keyUsageBits === undefined
        ? undefined
        : new Set(KEY_USAGE_BITS.filter((_, bit) => (keyUsageBits & (1 << bit)) !== 0)),
    extKeyUsage: eku === undefined ? undefined : [...eku],
    subjectAltNames,
    uris: namesOf('uri'),
    dnsNames: namesOf('dns'),
    ipAddresses: subjectAltNames
      .filter((name) => name.type === 'ip' && (name.bytes.length === 4 || name.bytes.length === 16))
      .map((name) => formatIpAddress(name.bytes)),
    emails: namesOf('email'),
    subjectKeyIdentifier: ski === undefined ? undefined : Buffer.from(ski.buffer).toString('hex'),
    authorityKeyIdentifier:
      aki === undefined
        ? undefined
        : {
            keyIdentifier:
              aki.keyIdentifier === undefined
                ? undefined
                : Buffer.from(aki.keyIdentifier.buffer).toString('hex'),
            hasAuthorityCertIssuer: aki.authorityCertIssuer !== undefined,
            hasAuthorityCertSerialNumber: aki.authorityCertSerialNumber !== undefined,
          },
    nameConstraints: ncValue === undefined ? undefined : decodeNameConstraints(ncValue),
    extensions,
    defects,
    native,
  });
}

function sameAlgorithm(a: asn1X509.AlgorithmIdentifier, b: asn1X509.AlgorithmIdentifier): boolean {
  return Buffer.from(AsnConvert.serialize(a)).equals(Buffer.from(AsnConvert.serialize(b)));
}

const CURVE_NAMES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
  prime192v1: 'P-192',
};

function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `EC ${CURVE_NAMES[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown curve'}`;
    case 'rsa':
      return `RSA ${details.modulusLength ?? 0}`;
    case 'rsa-pss':
      return `RSA-PSS ${details.modulusLength ?? 0}`;
    case 'dsa':
      return `DSA ${details.modulusLength ?? 0}`;
    case 'ed25519':
      return 'Ed25519';
    case 'ed448':
      return 'Ed448';
    default:
      return key.asymmetricKeyType ?? 'unknown';
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
