// The files of `mutual proxy run --cert --key --bundle` as the user's own PKI writes them: PEM or
// DER, a key in PKCS#8, SEC1 (with or without its EC PARAMETERS) or PKCS#1, a certificate file
// that also holds its key (nginx, HAProxy). Everything is handed on re-encoded as plain PEM:
// certificates only in the chain and bundle, one PKCS#8 key. Reading never blocks on a FIFO and
// never takes more than 1 MiB.

import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { MutualError } from '../errors.ts';
import {
  createTrustBundle,
  decodePem,
  describeCertificate,
  describeKey,
  encodePem,
  type KeyPair,
  type ParsedCertificate,
  parseBundlePem,
  parseCertificate,
  parseCertificatesPem,
  parsePrivateKeyPem,
  privateKeyToPem,
  type TrustBundle,
} from '../pki/index.ts';
import { type RegularFileRead, readRegularFile } from '../store/index.ts';

/** Far above any real chain, key or private bundle (the system's 140 public roots are 220 KB). */
export const MAX_CREDENTIAL_FILE_BYTES = 1 << 20;
/** As many roots as createTrustBundle takes. */
const MAX_BUNDLE_ROOTS = 64;

/**
 * Reads a regular file of at most 1 MiB. Opened non-blocking, so a FIFO without a writer is
 * refused instead of hanging the load (and, on reload, every later reload).
 */
export async function readCredentialBytes(path: string, flag: string): Promise<Buffer> {
  let read: RegularFileRead;
  try {
    read = await readRegularFile(path, MAX_CREDENTIAL_FILE_BYTES);
  } catch (error) {
    throw new MutualError(
      'MUTUAL_IO_READ_FAILED',
      `cannot read ${flag} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { cause: error },
    );
  }
  if (read.notAFile !== undefined) {
    throw new MutualError(
      'MUTUAL_IO_NOT_A_FILE',
      `${flag} ${path} is ${read.notAFile.kind}, not a file: give the path of the file itself${read.notAFile.stats.isDirectory() ? ` (e.g. ${path.replace(/\/$/, '')}/${EXAMPLE_NAME[flag] ?? 'tls.crt'})` : ''}`,
      { detail: { flag, path } },
    );
  }
  if (read.tooLarge !== undefined) {
    throw new MutualError(
      'MUTUAL_IO_NOT_A_FILE',
      `${flag} ${path} is ${read.tooLarge.grew ? 'more than ' : ''}${(read.tooLarge.size / 1_048_576).toFixed(1)} MiB; a certificate, key or bundle file is at most 1 MiB: check the path`,
      { detail: { flag, path } },
    );
  }
  return read.bytes;
}

/** How a Kubernetes TLS Secret names each file, for the example in the message. */
const EXAMPLE_NAME: Record<string, string> = {
  '--cert': 'tls.crt',
  '--key': 'tls.key',
  '--bundle': 'ca.crt',
};

const isPem = (bytes: Buffer) => bytes.includes('-----BEGIN');
/** A DER SEQUENCE: what every binary certificate, key and PKCS#7 file starts with. */
const isDer = (bytes: Buffer) => bytes[0] === 0x30 && bytes.length > 2;
/** id-signedData (1.2.840.113549.1.7.2), found near the start of any PKCS#7 bundle (.p7b). */
const PKCS7_SIGNED_DATA = Buffer.from('06092a864886f70d010702', 'hex');

function pemMalformed(message: string): MutualError {
  return new MutualError('MUTUAL_PKI_PEM_MALFORMED', message);
}

/** Refuses what is neither PEM nor DER, naming what to do for the usual cases. */
function checkReadable(bytes: Buffer, flag: string, path: string, der: string): void {
  if (
    bytes
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .trim() === ''
  ) {
    throw pemMalformed(`${flag} ${path} is empty: write the PEM ${der} into it`);
  }
  if (!isPem(bytes) && !isDer(bytes)) {
    throw pemMalformed(
      `${flag} ${path} holds neither PEM ("-----BEGIN ...-----" lines) nor DER: give the PEM ${der}`,
    );
  }
  if (
    bytes.subarray(0, 32).includes(PKCS7_SIGNED_DATA) ||
    /-----BEGIN PKCS7-----/.test(bytes.toString('latin1'))
  ) {
    throw new MutualError(
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      `${flag} ${path} is a PKCS#7 (.p7b) bundle; convert it to PEM certificates: openssl pkcs7 ${isPem(bytes) ? '' : '-inform DER '}-print_certs -in ${path} -out ${path}.pem`,
      { detail: { expected: 'CERTIFICATE', found: 'PKCS7' } },
    );
  }
}

/** The chain, leaf first; private key blocks beside the certificates (one file for both) are skipped. */
export function parseChainFile(bytes: Buffer, path: string): ParsedCertificate[] {
  checkReadable(bytes, '--cert', path, 'certificate chain (leaf first)');
  if (!isPem(bytes)) return [parseDerCertificate(bytes, '--cert', path)];
  const text = bytes.toString('utf8');
  const blocks = decodePem(text, path);
  const certificates = blocks.filter((block) => block.type === 'CERTIFICATE');
  const isKeyOnly = (type: string) => /PRIVATE KEY$|^EC PARAMETERS$/.test(type);
  if (
    certificates.length > 0 &&
    blocks.every((block) => block.type === 'CERTIFICATE' || isKeyOnly(block.type))
  ) {
    return parseCertificatesPem(certificates.map((block) => encodePem(block.type, block.der)).join(''), path);
  }
  // Names the wrong block (a key alone, a CSR …) as every other PEM reader of Mutual does.
  return parseCertificatesPem(text, path);
}

/** The private key, as one KeyPair; certificate blocks beside it (one file for both) are skipped. */
export function parseKeyFile(bytes: Buffer, path: string): KeyPair {
  checkReadable(bytes, '--key', path, 'private key');
  if (isPem(bytes)) return parsePrivateKeyPem(bytes.toString('utf8'), path);
  let privateKey: KeyObject | undefined;
  for (const type of ['pkcs8', 'sec1', 'pkcs1'] as const) {
    try {
      privateKey = createPrivateKey({ key: bytes, format: 'der', type });
      break;
    } catch {}
  }
  if (privateKey === undefined) {
    throw new MutualError(
      'MUTUAL_PKI_KEY_MALFORMED',
      `--key ${path} is DER but not an unencrypted PKCS#8, SEC1 or PKCS#1 private key; if it is encrypted or a certificate, write the PEM key instead: openssl pkey -inform DER -in ${path} -out ${path}.pem`,
    );
  }
  describeKey(privateKey, path);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

export function parseBundleFile(bytes: Buffer, path: string): TrustBundle {
  checkReadable(bytes, '--bundle', path, 'root certificates');
  const roots = isPem(bytes) ? undefined : [parseDerCertificate(bytes, '--bundle', path).der];
  if (roots === undefined) {
    const text = bytes.toString('utf8');
    const count = decodePem(text, path).filter((block) => block.type === 'CERTIFICATE').length;
    if (count > MAX_BUNDLE_ROOTS) {
      throw new MutualError(
        'MUTUAL_PKI_BUNDLE_INVALID',
        `--bundle ${path} holds ${count} certificates, more than the ${MAX_BUNDLE_ROOTS} roots a trust bundle may hold: it looks like the system's public CA store. Every root in --bundle may vouch for any SPIFFE ID, so a public CA would let anyone who buys a certificate from it be any workload; give only your own PKI's root (the bundle.pem that \`mutual ca create\` writes, or your CA's root certificate)`,
        { detail: { roots: count } },
      );
    }
  }
  try {
    return roots === undefined
      ? parseBundlePem(bytes.toString('utf8'), '', path)
      : createTrustBundle('', roots);
  } catch (error) {
    // createTrustBundle's messages name the root by number, not the file.
    if (error instanceof MutualError && !error.message.includes(path)) {
      throw new MutualError(error.code, `--bundle ${path}: ${error.message}`, {
        cause: error,
        detail: { ...error.detail },
      });
    }
    throw error;
  }
}

function parseDerCertificate(bytes: Buffer, flag: string, path: string): ParsedCertificate {
  try {
    return parseCertificate(bytes);
  } catch (error) {
    throw new MutualError(
      'MUTUAL_PKI_CERT_MALFORMED',
      `${flag} ${path} is DER but not one X.509 certificate (${(error as Error).message}); give PEM certificates${flag === '--cert' ? ', leaf first' : ''}`,
      { cause: error },
    );
  }
}

/** The PEM handed to TLS: certificates only, whatever else the file held. */
export const certificatesToPem = (certificates: readonly ParsedCertificate[]) =>
  certificates.map((certificate) => encodePem('CERTIFICATE', certificate.der)).join('');
export const keyToPem = (key: KeyPair) => privateKeyToPem(key.privateKey);

/** "certificate #2 "CN=web" (serial …)", for messages about a chain's order. */
export const describeInChain = (certificate: ParsedCertificate, index: number) =>
  `#${index + 1}, ${describeCertificate(certificate)}`;
