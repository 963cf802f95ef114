import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { promisify } from 'node:util';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Extensions } from '@peculiar/asn1-x509';
import { MutualError } from '../errors.ts';
import { parseSpiffeId, type SpiffeId } from '../spiffe/index.ts';
import {
  decodeGeneralNames,
  formatIpAddress,
  type GeneralNameEntry,
  isSingleTlv,
  readTlv,
} from './general-names.ts';
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

const verifyAsync = promisify(verify);
const EXTENSION_REQUEST_OID = '1.2.840.113549.1.9.14';
/** The signature algorithms a CSR may use: the key kind they need and the hash, for node:crypto. */
const SIGNATURE_ALGORITHMS: Record<string, { kind: 'ec' | 'rsa'; hash: string; name: string }> = {
  '1.2.840.10045.4.3.2': { kind: 'ec', hash: 'sha256', name: 'ecdsa-with-SHA256' },
  '1.2.840.10045.4.3.3': { kind: 'ec', hash: 'sha384', name: 'ecdsa-with-SHA384' },
  '1.2.840.10045.4.3.4': { kind: 'ec', hash: 'sha512', name: 'ecdsa-with-SHA512' },
  '1.2.840.113549.1.1.11': { kind: 'rsa', hash: 'sha256', name: 'sha256WithRSAEncryption' },
  '1.2.840.113549.1.1.12': { kind: 'rsa', hash: 'sha384', name: 'sha384WithRSAEncryption' },
  '1.2.840.113549.1.1.13': { kind: 'rsa', hash: 'sha512', name: 'sha512WithRSAEncryption' },
};

/** Signature algorithms seen in CSRs that are refused, named so the refusal says which it was. */
const REFUSED_SIGNATURE_ALGORITHMS: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
};

/**
 * The CA side: decodes a CSR (PEM or DER), checks its self-signature and that it asks for exactly
 * one name, the URI SAN `expectedId`, which the caller took from an authenticated token, never
 * from the CSR itself. The CSR is parsed once (ASN.1 schema), its SAN read from the exact bytes,
 * and the signature checked with node:crypto over the CertificationRequestInfo as it came.
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
  let request: CertificationRequest;
  let spkiDer: Uint8Array;
  try {
    request = AsnConvert.parse(der, CertificationRequest);
    spkiDer = subjectPublicKeyInfoDer(new Uint8Array(request.certificationRequestInfoRaw!));
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CSR_MALFORMED', 'the CSR is not a valid PKCS#10 request', {
      cause: error,
    });
  }
  const info = request.certificationRequestInfo;
  if (info.version !== 0 || !request.certificationRequestInfoRaw) {
    throw new MutualError(
      'MUTUAL_PKI_CSR_MALFORMED',
      `the CSR has version ${info.version + 1}; PKCS#10 requests are version 1 (0 in DER)`,
    );
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CSR_MALFORMED', 'the CSR public key cannot be decoded', {
      cause: error,
    });
  }
  const key = describeKey(publicKey, 'CSR key');
  await checkSignature(request, publicKey, key.kind);
  checkRequestedNames(requestedSans(info.attributes), expected);
  return { spiffeId: expected, publicKey };
}

/**
 * The SubjectPublicKeyInfo exactly as signed: the third element of the CertificationRequestInfo
 * (after version and subject), sliced from its bytes rather than re-encoded from the parse.
 */
function subjectPublicKeyInfoDer(info: Uint8Array): Uint8Array {
  const content = readTlv(info, 0).content;
  const version = readTlv(content, 0);
  const subject = readTlv(content, version.end);
  const spki = readTlv(content, subject.end);
  return content.subarray(subject.end, spki.end);
}

/** Proof of possession: the signature over the CertificationRequestInfo, exactly as sent. */
async function checkSignature(
  request: CertificationRequest,
  publicKey: KeyObject,
  keyKind: 'ec' | 'rsa',
): Promise<void> {
  const oid = request.signatureAlgorithm.algorithm;
  const algorithm = SIGNATURE_ALGORITHMS[oid];
  if (!algorithm || algorithm.kind !== keyKind) {
    const accepted = Object.values(SIGNATURE_ALGORITHMS)
      .filter((candidate) => candidate.kind === keyKind)
      .map((candidate) => candidate.name)
      .join(', ');
    const keyName = keyKind === 'ec' ? 'ECDSA' : 'RSA';
    const refused = REFUSED_SIGNATURE_ALGORITHMS[oid];
    throw new MutualError(
      'MUTUAL_PKI_CSR_SIGNATURE_INVALID',
      algorithm
        ? `the CSR is signed with ${algorithm.name}, which does not fit its ${keyName} key; sign it with one of ${accepted}`
        : `the CSR is signed with ${refused ? `${refused} (${oid})` : `algorithm ${oid}`}, which Mutual does not accept; sign it with one of ${accepted}`,
    );
  }
  let isSignatureValid = false;
  try {
    isSignatureValid = await verifyAsync(
      algorithm.hash,
      new Uint8Array(request.certificationRequestInfoRaw!),
      keyKind === 'ec' ? { key: publicKey, dsaEncoding: 'der' } : publicKey,
      new Uint8Array(request.signature),
    );
  } catch {
    isSignatureValid = false;
  }
  if (!isSignatureValid) {
    throw new MutualError(
      'MUTUAL_PKI_CSR_SIGNATURE_INVALID',
      'the CSR signature does not verify with its own public key, so it proves no possession of the key',
    );
  }
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

/**
 * The subjectAltName extension values of every extensionRequest attribute: all of them, so a
 * second attribute or a second SAN extension cannot smuggle in a name the check did not see.
 */
function requestedSans(
  attributes: CertificationRequest['certificationRequestInfo']['attributes'],
): Uint8Array[] {
  const sans: Uint8Array[] = [];
  for (const attribute of attributes) {
    if (attribute.type !== EXTENSION_REQUEST_OID) continue;
    for (const value of attribute.values) {
      let extensions: Extensions;
      try {
        extensions = AsnConvert.parse(value, Extensions);
      } catch (error) {
        throw new MutualError('MUTUAL_PKI_CSR_MALFORMED', 'the CSR extension request cannot be decoded', {
          cause: error,
        });
      }
      for (const extension of extensions) {
        if (extension.extnID === SUBJECT_ALT_NAME_OID) sans.push(new Uint8Array(extension.extnValue.buffer));
      }
    }
  }
  return sans;
}

function checkRequestedNames(sanExtensions: readonly Uint8Array[], expected: SpiffeId): void {
  if (sanExtensions.length > 1) {
    throw sanInvalid(`the CSR has ${sanExtensions.length} subjectAltName extensions; exactly one is allowed`);
  }
  const extension = sanExtensions[0];
  if (!extension) {
    throw sanInvalid(`the CSR has no subjectAltName; it must carry exactly one URI SAN, ${expected.uri}`);
  }
  let names: GeneralNameEntry[];
  try {
    names = decodeGeneralNames(extension);
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_CSR_MALFORMED', 'the CSR subjectAltName cannot be decoded', {
      cause: error,
    });
  }
  const uris = names.filter((name) => name.type === 'uri').map((name) => name.value);
  const others = names.filter((name) => name.type !== 'uri');
  if (others.length > 0) {
    const shown = others.map((name) => `${name.type.toUpperCase()}:${shownValue(name)}`).join(', ');
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

function shownValue(name: GeneralNameEntry): string {
  if (name.type !== 'ip') return name.value;
  return name.bytes.length === 4 || name.bytes.length === 16
    ? formatIpAddress(name.bytes)
    : Buffer.from(name.bytes).toString('hex');
}

function sanInvalid(message: string): MutualError {
  return new MutualError('MUTUAL_PKI_CSR_SAN_INVALID', message);
}
