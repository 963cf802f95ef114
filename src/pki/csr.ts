import { createPublicKey, type KeyObject } from 'node:crypto';
import { MutualError } from '../errors.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe/index.ts';
import { isSingleTlv } from './general-names.ts';
import { describeKey } from './keys.ts';
import { decodePem, encodePem } from './pem.ts';
import { signingAlgorithmFor, toCryptoKey, x509 } from './x509-library.ts';

const SUBJECT_ALT_NAME_OID = '2.5.29.17';
const MAX_CSR_BYTES = 16 * 1024;

/**
 * Builds a PKCS#10 request on the workload side. Only the public key and the requested SPIFFE ID
 * leave the workload; the private key signs the request (proof of possession) and stays here.
 */
export async function createCsr(options: { privateKey: KeyObject; spiffeId: string }): Promise<string> {
  const id = parseSpiffeId(options.spiffeId);
  const publicKey = createPublicKey(options.privateKey);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: { privateKey: toCryptoKey(options.privateKey), publicKey: toCryptoKey(publicKey) },
    signingAlgorithm: signingAlgorithmFor(options.privateKey),
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.uri }], true)],
  });
  return encodePem('CERTIFICATE REQUEST', new Uint8Array(csr.rawData));
}

/** A CSR that passed every check the CA makes before signing. */
export interface AdmittedCsr {
  readonly spiffeId: SpiffeId;
  readonly publicKey: KeyObject;
}

/**
 * The CA side: decodes a CSR (PEM or DER), checks its self-signature and that it asks for exactly
 * one name, the URI SAN `expectedId`, which the caller took from an authenticated token, never
 * from the CSR itself.
 */
export async function admitCsr(csr: string | Uint8Array, expectedId: string): Promise<AdmittedCsr> {
  const expected = parseSpiffeId(expectedId);
  const der = csrDer(csr);
  if (!isSingleTlv(der)) {
    throw new MutualError(
      'MUTUAL_PKI_CSR_MALFORMED',
      'the CSR is not one DER structure (truncated, or bytes after its end)',
    );
  }
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(der);
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CSR_MALFORMED', 'the CSR is not a valid PKCS#10 request', {
      cause: error,
    });
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(request.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CSR_MALFORMED', 'the CSR public key cannot be decoded', {
      cause: error,
    });
  }
  describeKey(publicKey, 'CSR key');
  let isSignatureValid = false;
  try {
    isSignatureValid = await request.verify();
  } catch {
    isSignatureValid = false;
  }
  if (!isSignatureValid) {
    throw new MutualError(
      'MUTUAL_PKI_CSR_SIGNATURE_INVALID',
      'the CSR signature does not verify with its own public key, so it proves no possession of the key',
    );
  }
  checkRequestedNames(request, expected);
  return { spiffeId: expected, publicKey };
}

function csrDer(csr: string | Uint8Array): Uint8Array {
  if (typeof csr !== 'string') {
    if (csr.byteLength > MAX_CSR_BYTES) throw tooLarge(csr.byteLength);
    return csr;
  }
  if (csr.length > MAX_CSR_BYTES * 2) throw tooLarge(csr.length);
  const blocks = decodePem(csr, 'CSR');
  const requestBlocks = blocks.filter(
    (block) => block.type === 'CERTIFICATE REQUEST' || block.type === 'NEW CERTIFICATE REQUEST',
  );
  if (blocks.length !== 1 || requestBlocks.length !== 1) {
    throw new MutualError(
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      `CSR: expected one "CERTIFICATE REQUEST" PEM block but found: ${blocks.map((block) => block.type).join(', ')}`,
    );
  }
  return requestBlocks[0]!.der;
}

function tooLarge(size: number): MutualError {
  return new MutualError(
    'MUTUAL_PKI_CSR_MALFORMED',
    `the CSR is ${size} bytes; at most ${MAX_CSR_BYTES} are accepted`,
  );
}

function checkRequestedNames(request: x509.Pkcs10CertificateRequest, expected: SpiffeId): void {
  // getExtension returns only the first match; a second SAN extension could smuggle in a name.
  const sanExtensions = request.extensions.filter((extension) => extension.type === SUBJECT_ALT_NAME_OID);
  if (sanExtensions.length > 1) {
    throw sanInvalid(`the CSR has ${sanExtensions.length} subjectAltName extensions; exactly one is allowed`);
  }
  const extension = sanExtensions[0];
  if (!extension) {
    throw sanInvalid(`the CSR has no subjectAltName; it must carry exactly one URI SAN, ${expected.uri}`);
  }
  const names = new x509.SubjectAlternativeNameExtension(extension.rawData).names.items;
  const uris = names.filter((name) => name.type === 'url').map((name) => name.value);
  const others = names.filter((name) => name.type !== 'url');
  if (others.length > 0) {
    const shown = others.map((name) => `${name.type.toUpperCase()}:${name.value}`).join(', ');
    throw sanInvalid(`the CSR asks for names other than its SPIFFE ID (${shown}); remove them`);
  }
  if (uris.length !== 1) {
    throw sanInvalid(`the CSR has ${uris.length} URI SANs; an X.509-SVID has exactly one, ${expected.uri}`);
  }
  if (uris[0] !== expected.uri) {
    throw sanInvalid(
      `the CSR asks for ${JSON.stringify(uris[0])} but the caller is authenticated as ${expected.uri}; the identity comes from the token, not the CSR`,
    );
  }
}

function sanInvalid(message: string): MutualError {
  return new MutualError('MUTUAL_PKI_CSR_SAN_INVALID', message);
}
