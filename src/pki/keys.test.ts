import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { type ErrorCode, isMutualError } from '../errors.ts';
import { throwsCode } from '../testing/expect-error.ts';
import {
  describeKey,
  generateKeyPair,
  isSameKey,
  type KeyDescription,
  parsePrivateKeyPem,
  privateKeyToPem,
  publicKeyDer,
} from './keys.ts';
import { encodePem } from './pem.ts';

function pem(key: KeyObject, type: 'pkcs8' | 'sec1' | 'pkcs1'): string {
  return key.export({ type, format: 'pem' }) as string;
}

const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
const rsa2047 = generateKeyPairSync('rsa', { modulusLength: 2047 });
const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed25519 = generateKeyPairSync('ed25519');
const x25519 = generateKeyPairSync('x25519');

test('generateKeyPair makes ECDSA keys on the requested curve', async () => {
  const cases: Array<[Parameters<typeof generateKeyPair>[0], KeyDescription]> = [
    [undefined, { kind: 'ec', curve: 'P-256', bits: 256, label: 'ECDSA P-256' }],
    ['ecdsa-p256', { kind: 'ec', curve: 'P-256', bits: 256, label: 'ECDSA P-256' }],
    ['ecdsa-p384', { kind: 'ec', curve: 'P-384', bits: 384, label: 'ECDSA P-384' }],
  ];
  for (const [algorithm, expected] of cases) {
    const keys = await generateKeyPair(algorithm);
    assert.equal(keys.privateKey.type, 'private');
    assert.equal(keys.publicKey.type, 'public');
    assert.deepEqual(describeKey(keys.privateKey), expected, String(algorithm));
    assert.deepEqual(describeKey(keys.publicKey), expected, String(algorithm));
    assert.ok(isSameKey(keys.privateKey, keys.publicKey));
  }
  const a = await generateKeyPair();
  const b = await generateKeyPair();
  assert.ok(!isSameKey(a.publicKey, b.publicKey), 'two generated keys are the same key');
});

test('describeKey accepts P-256, P-384 and RSA ≥ 2048 with labels', () => {
  const cases: Array<[string, KeyObject, string]> = [
    ['P-256', p256.publicKey, 'ECDSA P-256'],
    ['P-384', p384.privateKey, 'ECDSA P-384'],
    ['RSA 2048', rsa2048.publicKey, 'RSA 2048'],
  ];
  for (const [name, key, label] of cases) assert.equal(describeKey(key).label, label, name);
  assert.deepEqual(describeKey(rsa2048.privateKey), { kind: 'rsa', bits: 2048, label: 'RSA 2048' });
});

test('describeKey refuses weak and foreign keys with MUTUAL_PKI_KEY_UNSUPPORTED', () => {
  const cases: Array<[string, KeyObject, string]> = [
    ['RSA 1024', rsa1024.publicKey, 'RSA 1024'],
    ['RSA 2047', rsa2047.privateKey, 'RSA 2047'],
    ['P-521', p521.publicKey, 'ECDSA on curve secp521r1'],
    ['secp256k1', secp256k1.publicKey, 'ECDSA on curve secp256k1'],
    ['Ed25519', ed25519.publicKey, 'ed25519'],
    ['X25519', x25519.privateKey, 'x25519'],
  ];
  for (const [name, key, found] of cases) {
    assert.throws(
      () => describeKey(key, 'issuer key'),
      (error: unknown) => {
        assert.ok(isMutualError(error, 'MUTUAL_PKI_KEY_UNSUPPORTED'), `${name}: got ${String(error)}`);
        assert.equal(error.detail.found, found, name);
        assert.match(error.message, /^issuer key is /, name);
        assert.match(error.message, /P-256/, name);
        return true;
      },
      name,
    );
  }
});

test('parsePrivateKeyPem reads PKCS#8, SEC1 and PKCS#1 keys', () => {
  const cases: Array<[string, string, KeyObject, string]> = [
    ['PKCS#8 P-256', pem(p256.privateKey, 'pkcs8'), p256.publicKey, 'ECDSA P-256'],
    ['SEC1 "EC PRIVATE KEY" P-256', pem(p256.privateKey, 'sec1'), p256.publicKey, 'ECDSA P-256'],
    ['SEC1 "EC PRIVATE KEY" P-384', pem(p384.privateKey, 'sec1'), p384.publicKey, 'ECDSA P-384'],
    ['PKCS#1 "RSA PRIVATE KEY" 2048', pem(rsa2048.privateKey, 'pkcs1'), rsa2048.publicKey, 'RSA 2048'],
    [
      'CRLF line endings',
      pem(p256.privateKey, 'pkcs8').replaceAll('\n', '\r\n'),
      p256.publicKey,
      'ECDSA P-256',
    ],
    [
      'certificate-like block before the key (combined file)',
      encodePem('CERTIFICATE', Buffer.from('not a real certificate')) + pem(p256.privateKey, 'pkcs8'),
      p256.publicKey,
      'ECDSA P-256',
    ],
  ];
  for (const [name, text, publicKey, label] of cases) {
    const keys = parsePrivateKeyPem(text);
    assert.ok(isSameKey(keys.publicKey, publicKey), name);
    assert.ok(isSameKey(keys.privateKey, publicKey), name);
    assert.equal(keys.privateKey.type, 'private', name);
    assert.equal(keys.publicKey.type, 'public', name);
    assert.equal(describeKey(keys.privateKey).label, label, name);
  }
  assert.match(pem(p256.privateKey, 'sec1'), /^-----BEGIN EC PRIVATE KEY-----/);
});

test('parsePrivateKeyPem refuses what is not exactly one usable private key', () => {
  const p256Pkcs8 = pem(p256.privateKey, 'pkcs8');
  const certificatePem = encodePem('CERTIFICATE', Buffer.from('certificate bytes'));
  const cases: Array<[string, string, ErrorCode, RegExp?]> = [
    ['empty', '', 'MUTUAL_PKI_PEM_MALFORMED'],
    ['garbage text', 'this is not a key', 'MUTUAL_PKI_PEM_MALFORMED'],
    ['truncated key', p256Pkcs8.slice(0, 80), 'MUTUAL_PKI_PEM_MALFORMED'],
    [
      'garbage DER in a key block',
      encodePem('PRIVATE KEY', Buffer.from('garbage garbage')),
      'MUTUAL_PKI_KEY_MALFORMED',
    ],
    [
      'SEC1 DER labelled PKCS#8',
      encodePem('PRIVATE KEY', p256.privateKey.export({ type: 'sec1', format: 'der' })),
      'MUTUAL_PKI_KEY_MALFORMED',
    ],
    [
      'encrypted PKCS#8',
      p256.privateKey.export({
        type: 'pkcs8',
        format: 'pem',
        cipher: 'aes-256-cbc',
        passphrase: 'secret',
      }) as string,
      'MUTUAL_PKI_KEY_MALFORMED',
      /encrypted/,
    ],
    [
      'two keys',
      p256Pkcs8 + pem(p384.privateKey, 'pkcs8'),
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      /exactly one private key/,
    ],
    ['the same key twice', p256Pkcs8 + p256Pkcs8, 'MUTUAL_PKI_PEM_WRONG_TYPE', /exactly one private key/],
    ['certificate instead of key', certificatePem, 'MUTUAL_PKI_PEM_WRONG_TYPE', /found: CERTIFICATE/],
    [
      'public key instead of key',
      p256.publicKey.export({ type: 'spki', format: 'pem' }) as string,
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      /PUBLIC KEY/,
    ],
    ['RSA 1024', pem(rsa1024.privateKey, 'pkcs8'), 'MUTUAL_PKI_KEY_UNSUPPORTED', /RSA 1024/],
    ['RSA 1024 PKCS#1', pem(rsa1024.privateKey, 'pkcs1'), 'MUTUAL_PKI_KEY_UNSUPPORTED', /RSA 1024/],
    ['Ed25519', pem(ed25519.privateKey, 'pkcs8'), 'MUTUAL_PKI_KEY_UNSUPPORTED', /ed25519/],
    ['P-521', pem(p521.privateKey, 'pkcs8'), 'MUTUAL_PKI_KEY_UNSUPPORTED', /secp521r1/],
    ['P-521 SEC1', pem(p521.privateKey, 'sec1'), 'MUTUAL_PKI_KEY_UNSUPPORTED', /secp521r1/],
  ];
  for (const [name, text, code, message] of cases)
    throwsCode(() => parsePrivateKeyPem(text, 'key.pem'), code, name, message);

  // A legacy-encrypted SEC1 key (Proc-Type/DEK-Info headers) is refused, never prompted for.
  const legacyEncrypted = p256.privateKey.export({
    type: 'sec1',
    format: 'pem',
    cipher: 'aes-128-cbc',
    passphrase: 'secret',
  }) as string;
  assert.match(legacyEncrypted, /Proc-Type: 4,ENCRYPTED/);
  assert.throws(
    () => parsePrivateKeyPem(legacyEncrypted),
    (error: unknown) =>
      isMutualError(error, 'MUTUAL_PKI_PEM_MALFORMED') || isMutualError(error, 'MUTUAL_PKI_KEY_MALFORMED'),
  );
});

test('parsePrivateKeyPem names the source in its errors', () => {
  throwsCode(
    () => parsePrivateKeyPem('nope', '/etc/mutual/issuer.key'),
    'MUTUAL_PKI_PEM_MALFORMED',
    '',
    /^\/etc\/mutual\/issuer\.key: /,
  );
  throwsCode(
    () => parsePrivateKeyPem(pem(rsa1024.privateKey, 'pkcs8'), '/etc/mutual/issuer.key'),
    'MUTUAL_PKI_KEY_UNSUPPORTED',
    '',
    /^\/etc\/mutual\/issuer\.key is RSA 1024/,
  );
});

test('privateKeyToPem writes PKCS#8 that parses back to the same key', async () => {
  for (const algorithm of ['ecdsa-p256', 'ecdsa-p384'] as const) {
    const keys = await generateKeyPair(algorithm);
    const text = privateKeyToPem(keys.privateKey);
    assert.match(text, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.ok(text.endsWith('-----END PRIVATE KEY-----\n'));
    const parsed = parsePrivateKeyPem(text);
    assert.ok(isSameKey(parsed.publicKey, keys.publicKey), algorithm);
    assert.deepEqual(
      parsed.privateKey.export({ type: 'pkcs8', format: 'der' }),
      keys.privateKey.export({ type: 'pkcs8', format: 'der' }),
    );
  }
});

test('isSameKey compares public keys, whichever half is given', () => {
  assert.ok(isSameKey(p256.privateKey, p256.publicKey));
  assert.ok(isSameKey(p256.publicKey, p256.privateKey));
  assert.ok(!isSameKey(p256.publicKey, p384.publicKey));
  assert.ok(!isSameKey(p256.privateKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
  assert.deepEqual(publicKeyDer(p256.privateKey), publicKeyDer(p256.publicKey));
});
