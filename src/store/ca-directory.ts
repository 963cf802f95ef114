import { join } from 'node:path';
import type { Clock } from '../clock.ts';
import { isMutualError } from '../errors.ts';
import {
  bundleToJwks,
  bundleToPem,
  type CertificateAuthority,
  createTrustBundle,
  loadAuthority,
  parseBundle,
  privateKeyToPem,
  type TrustBundle,
} from '../pki/index.ts';
import { readTextFile, writeNewFiles } from './files.ts';

/** File names inside a CA directory, as `mutual ca create` writes them. */
export const CA_FILES = {
  anchorCertificate: 'trust-anchor.crt',
  anchorKey: 'trust-anchor.key',
  issuerCertificate: 'issuer.crt',
  issuerKey: 'issuer.key',
  bundlePem: 'bundle.pem',
  bundleJwks: 'bundle.jwks.json',
} as const;

export async function writeCaDirectory(
  dir: string,
  anchor: CertificateAuthority,
  issuer: CertificateAuthority,
  flag = '--out',
): Promise<{ paths: string[]; bundle: TrustBundle }> {
  const bundle = createTrustBundle(anchor.trustDomain, [Buffer.from(anchor.certificate.rawData)]);
  const paths = await writeNewFiles(
    dir,
    [
      { name: CA_FILES.anchorCertificate, contents: anchor.certificatePem, isSecret: false },
      { name: CA_FILES.anchorKey, contents: privateKeyToPem(anchor.keys.privateKey), isSecret: true },
      { name: CA_FILES.issuerCertificate, contents: issuer.certificatePem, isSecret: false },
      { name: CA_FILES.issuerKey, contents: privateKeyToPem(issuer.keys.privateKey), isSecret: true },
      { name: CA_FILES.bundlePem, contents: bundleToPem(bundle), isSecret: false },
      {
        name: CA_FILES.bundleJwks,
        contents: `${JSON.stringify(bundleToJwks(bundle), null, 2)}\n`,
        isSecret: false,
      },
    ],
    flag,
  );
  return { paths, bundle };
}

export interface LoadedCa {
  readonly issuer: CertificateAuthority;
  readonly bundle: TrustBundle;
}

/** Loads the issuer (checked: CA, key matches, within validity) and the trust bundle of a CA directory. */
export async function readCaDirectory(
  dir: string,
  clock: Clock,
  /** The trust domain of an issuer whose certificate names none (a CA made by openssl, cfssl, easy-rsa…). */
  options: { trustDomainIfUnnamed?: string } = {},
): Promise<LoadedCa> {
  const certificatePath = join(dir, CA_FILES.issuerCertificate);
  const keyPath = join(dir, CA_FILES.issuerKey);
  const bundlePath = join(dir, CA_FILES.bundlePem);
  const reads = await Promise.allSettled([
    readTextFile(certificatePath, 'issuer certificate'),
    readTextFile(keyPath, 'issuer key'),
    readTextFile(bundlePath, 'trust bundle'),
  ]);
  // The first failure in this order, not whichever read failed first: the same error every time.
  const failed = reads.find((read) => read.status === 'rejected');
  if (failed) throw failed.reason;
  const [certificatePem, privateKeyPem, bundleText] = reads.map(
    (read) => (read as PromiseFulfilledResult<string>).value,
  ) as [string, string, string];
  const load = (trustDomain?: string) =>
    loadAuthority({
      certificatePem,
      privateKeyPem,
      clock,
      source: certificatePath,
      keySource: keyPath,
      ...(trustDomain === undefined ? {} : { trustDomain }),
    });
  let issuer: CertificateAuthority;
  try {
    issuer = load();
  } catch (error) {
    const isUnnamed = isMutualError(error) && error.detail.reason === 'no-trust-domain';
    if (!isUnnamed || options.trustDomainIfUnnamed === undefined) throw error;
    issuer = load(options.trustDomainIfUnnamed);
  }
  const bundle = parseBundle(bundleText, issuer.trustDomain, bundlePath);
  return { issuer, bundle };
}

/** Where the identity service reads its issuer and trust anchors: a CA directory, or files anywhere. */
export interface CaFilePaths {
  readonly issuerCertificate: string;
  readonly issuerKey: string;
  /** Every root to trust and publish (PEM with one or many roots, or a SPIFFE JWKS document). */
  readonly trustAnchors: string;
}

export function caFilePaths(dir: string): CaFilePaths {
  return {
    issuerCertificate: join(dir, CA_FILES.issuerCertificate),
    issuerKey: join(dir, CA_FILES.issuerKey),
    trustAnchors: join(dir, CA_FILES.bundlePem),
  };
}
