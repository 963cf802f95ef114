// Certificates for unit tests, built with @peculiar/x509 so every hostile variant (expired, CA as
// leaf, unknown critical extension, …) is one option away from a valid SVID. Tests only.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';

// Node's webcrypto is the WebCrypto the DOM type describes; the project compiles without the DOM lib.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[1]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** The instant tests verify at; certificates are valid for a window around it by default. */
export const FIXTURE_NOW_MS = Date.UTC(2030, 0, 1);

export interface Issued {
  readonly cert: x509.X509Certificate;
  readonly der: Uint8Array;
  readonly keys: CryptoKeyPair;
}

export interface CertOptions {
  readonly name: string;
  /** Signs the certificate; self-signed when absent. */
  readonly issuer?: Issued;
  readonly notBeforeMs?: number;
  readonly notAfterMs?: number;
  /** basicConstraints cA; omitted entirely when undefined. */
  readonly isCa?: boolean;
  readonly pathLength?: number;
  readonly keyUsage?: x509.KeyUsageFlags;
  readonly extKeyUsage?: readonly string[];
  readonly uris?: readonly string[];
  readonly dnsNames?: readonly string[];
  /** Permitted URI host constraints, e.g. ['cluster.local']. */
  readonly permittedUriHosts?: readonly string[];
  readonly extraExtensions?: readonly x509.Extension[];
  readonly omitAuthorityKeyId?: boolean;
}

let serial = 1;

export async function issue(options: CertOptions): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const signer = options.issuer;
  const extensions: x509.Extension[] = [];
  if (options.isCa !== undefined) {
    extensions.push(new x509.BasicConstraintsExtension(options.isCa, options.pathLength, true));
  }
  if (options.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(options.keyUsage, true));
  if (options.extKeyUsage !== undefined) {
    extensions.push(new x509.ExtendedKeyUsageExtension([...options.extKeyUsage], false));
  }
  const names = [
    ...(options.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (options.permittedUriHosts !== undefined) {
    const constraints = new asn1X509.NameConstraints({
      permittedSubtrees: new asn1X509.GeneralSubtrees(
        options.permittedUriHosts.map(
          (host) =>
            new asn1X509.GeneralSubtree({
              base: new asn1X509.GeneralName({ uniformResourceIdentifier: host }),
            }),
        ),
      ),
    });
    extensions.push(
      new x509.Extension(asn1X509.id_ce_nameConstraints, true, AsnConvert.serialize(constraints)),
    );
  }
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  if (signer !== undefined && !options.omitAuthorityKeyId) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.keys.publicKey));
  }
  extensions.push(...(options.extraExtensions ?? []));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    subject: `CN=${options.name}`,
    issuer: signer === undefined ? `CN=${options.name}` : signer.cert.subject,
    notBefore: new Date(options.notBeforeMs ?? FIXTURE_NOW_MS - DAY_MS),
    notAfter: new Date(options.notAfterMs ?? FIXTURE_NOW_MS + DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: (signer ?? { keys }).keys.privateKey,
    extensions,
  });
  return { cert, der: new Uint8Array(cert.rawData), keys };
}

const CA_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

export function root(name = 'Mutual Test Root', options: Partial<CertOptions> = {}): Promise<Issued> {
  return issue({ name, isCa: true, keyUsage: CA_USAGE, ...options });
}

export function intermediate(issuer: Issued, options: Partial<CertOptions> = {}): Promise<Issued> {
  return issue({ name: 'Mutual Test Intermediate', issuer, isCa: true, keyUsage: CA_USAGE, ...options });
}

/** A valid X509-SVID for `spiffeId` unless `options` break it. */
export function svid(issuer: Issued, spiffeId: string, options: Partial<CertOptions> = {}): Promise<Issued> {
  return issue({
    name: 'workload',
    issuer,
    isCa: false,
    keyUsage: x509.KeyUsageFlags.digitalSignature,
    extKeyUsage: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
    uris: [spiffeId],
    ...options,
  });
}

/** The same certificate with one bit of its signature flipped. */
export function tamperSignature(der: Uint8Array): Uint8Array {
  const copy = new Uint8Array(der);
  copy[copy.length - 1]! ^= 0x01;
  return copy;
}

export { x509 };
export const DAY = DAY_MS;
