// The one place @peculiar/x509 is loaded and configured. It needs the reflect-metadata polyfill
// before it loads, and Node's WebCrypto as its provider.
import 'reflect-metadata';
import { type KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { describeKey } from './keys.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

export type SigningAlgorithm =
  | { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' }
  | { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' };

/** ECDSA with SHA-256 (P-256) or SHA-384 (P-384); RSA PKCS#1 v1.5 with SHA-256. */
export function signingAlgorithmFor(key: KeyObject): SigningAlgorithm {
  const description = describeKey(key);
  if (description.kind === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return description.curve === 'P-384'
    ? { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' }
    : { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
}

export function toCryptoKey(key: KeyObject): webcrypto.CryptoKey {
  const usages: webcrypto.KeyUsage[] = key.type === 'private' ? ['sign'] : ['verify'];
  return key.toCryptoKey(signingAlgorithmFor(key), true, usages);
}
