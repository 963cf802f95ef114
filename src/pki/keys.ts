import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateNodeKeyPair,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { MutualError } from '../errors.ts';
import { decodePem, encodePem, isPrivateKeyPemType } from './pem.ts';

const generate = promisify(generateNodeKeyPair);

/** Key types Mutual generates. Imported anchors may also be RSA (see checkSupportedKey). */
export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384';

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** What a key is, for checks, display and choosing a signature algorithm. */
export interface KeyDescription {
  readonly kind: 'ec' | 'rsa';
  /** 'P-256' / 'P-384' for EC keys. */
  readonly curve?: 'P-256' | 'P-384';
  readonly bits: number;
  /** e.g. 'ECDSA P-256' or 'RSA 2048'. */
  readonly label: string;
}

const MIN_RSA_BITS = 2048;
const CURVES: Record<string, { name: 'P-256' | 'P-384'; bits: number }> = {
  prime256v1: { name: 'P-256', bits: 256 },
  secp384r1: { name: 'P-384', bits: 384 },
};

export async function generateKeyPair(algorithm: KeyAlgorithm = 'ecdsa-p256'): Promise<KeyPair> {
  const namedCurve = algorithm === 'ecdsa-p384' ? 'P-384' : 'P-256';
  return generate('ec', { namedCurve });
}

/**
 * Describes a key and refuses those Mutual does not accept: ECDSA on P-256/P-384 and RSA of at
 * least 2048 bits. `what` names the key in the error ("issuer key", "CSR key" ...).
 */
export function describeKey(key: KeyObject, what = 'key'): KeyDescription {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec') {
    const curve = CURVES[details.namedCurve ?? ''];
    if (!curve) {
      throw unsupported(what, `ECDSA on curve ${details.namedCurve ?? 'unknown'}`);
    }
    return { kind: 'ec', curve: curve.name, bits: curve.bits, label: `ECDSA ${curve.name}` };
  }
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw unsupported(what, `RSA ${bits}`);
    return { kind: 'rsa', bits, label: `RSA ${bits}` };
  }
  throw unsupported(what, type ?? 'unknown key type');
}

function unsupported(what: string, found: string): MutualError {
  return new MutualError(
    'MUTUAL_PKI_KEY_UNSUPPORTED',
    `${what} is ${found}, which Mutual does not accept: use ECDSA P-256 (default) or P-384, or RSA with at least ${MIN_RSA_BITS} bits (a new P-256 key: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem)`,
    { detail: { found } },
  );
}

/** PKCS#8 PEM, the form Node's tls module and OpenSSL read directly. */
export function privateKeyToPem(key: KeyObject): string {
  return encodePem('PRIVATE KEY', key.export({ type: 'pkcs8', format: 'der' }));
}

/** Reads exactly one unencrypted private key from PEM and checks that its type is accepted. */
export function parsePrivateKeyPem(text: string, source = 'private key'): KeyPair {
  if (/Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    throw new MutualError(
      'MUTUAL_PKI_KEY_MALFORMED',
      `${source}: the private key is encrypted; decrypt it first (openssl pkey -in KEY -out KEY.plain)`,
    );
  }
  const blocks = decodePem(text, source);
  const keyBlocks = blocks.filter((block) => isPrivateKeyPemType(block.type));
  if (keyBlocks.length !== 1) {
    const found = blocks.map((block) => block.type).join(', ');
    throw new MutualError(
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      `${source}: expected exactly one private key PEM block but found: ${found}`,
      { detail: { expected: 'PRIVATE KEY', found } },
    );
  }
  const block = keyBlocks[0]!;
  if (block.type === 'ENCRYPTED PRIVATE KEY') {
    throw new MutualError(
      'MUTUAL_PKI_KEY_MALFORMED',
      `${source}: the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out KEY.plain)`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: text, format: 'pem' });
  } catch (error) {
    throw new MutualError('MUTUAL_PKI_KEY_MALFORMED', `${source}: the private key cannot be decoded`, {
      cause: error,
    });
  }
  describeKey(privateKey, source);
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/** DER SubjectPublicKeyInfo; two keys are the same key exactly when these bytes are equal. */
export function publicKeyDer(key: KeyObject): Buffer {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ type: 'spki', format: 'der' });
}

export function isSameKey(a: KeyObject, b: KeyObject): boolean {
  return publicKeyDer(a).equals(publicKeyDer(b));
}
