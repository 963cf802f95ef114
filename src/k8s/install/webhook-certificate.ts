// The injector webhook's serving certificate: a small CA of its own (its certificate becomes the
// webhook's caBundle, which only the API server trusts) and a server certificate for the
// Service's DNS names. Not part of the mesh PKI: no SPIFFE ID, not in the trust bundle.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.ts';
// The one configured @peculiar/x509 (reflect-metadata, WebCrypto provider) comes from pki/.
import {
  encodePem,
  generateKeyPair,
  privateKeyToPem,
  signingAlgorithmFor,
  toCryptoKey,
  x509,
} from '../../pki/index.ts';

export interface WebhookCertificate {
  /** The webhook CA's certificate: the MutatingWebhookConfiguration's caBundle and the Secret's ca.crt. */
  readonly caPem: string;
  readonly certificatePem: string;
  readonly keyPem: string;
  readonly notAfterMs: number;
}

const BACKDATE_MS = 5 * 60 * 1000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** The names the API server may use for `<service>.<namespace>.svc`, the one it dials. */
export function webhookDnsNames(service: string, namespace: string): string[] {
  return [
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    `${service}.${namespace}`,
  ];
}

export async function createWebhookCertificate(options: {
  dnsNames: readonly string[];
  lifetimeMs: number;
  clock: Clock;
}): Promise<WebhookCertificate> {
  const now = options.clock.now();
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + options.lifetimeMs);
  const caKeys = await generateKeyPair();
  const caName = `O=Mutual, CN=Mutual injector webhook CA ${randomBytes(4).toString('hex')}`;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex(),
    name: caName,
    notBefore,
    notAfter,
    keys: { privateKey: toCryptoKey(caKeys.privateKey), publicKey: toCryptoKey(caKeys.publicKey) },
    signingAlgorithm: signingAlgorithmFor(caKeys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(toCryptoKey(caKeys.publicKey)),
    ],
  });
  const keys = await generateKeyPair();
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialHex(),
    subject: `O=Mutual, CN=${options.dnsNames[0]}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: toCryptoKey(keys.publicKey),
    signingKey: toCryptoKey(caKeys.privateKey),
    signingAlgorithm: signingAlgorithmFor(caKeys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([SERVER_AUTH], false),
      await x509.AuthorityKeyIdentifierExtension.create(toCryptoKey(caKeys.publicKey)),
      new x509.SubjectAlternativeNameExtension(options.dnsNames.map((value) => ({ type: 'dns', value }))),
    ],
  });
  return {
    caPem: encodePem('CERTIFICATE', new Uint8Array(ca.rawData)),
    certificatePem: encodePem('CERTIFICATE', new Uint8Array(certificate.rawData)),
    keyPem: privateKeyToPem(keys.privateKey),
    notAfterMs: certificate.notAfter.getTime(),
  };
}

/** A positive 127-bit serial (RFC 5280: at most 20 octets). */
function serialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}
