import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { isMutualError } from '../errors.ts';
import { throwsCode } from '../testing/expect-error.ts';
import { decodePem, decodePemOfType, encodePem } from './pem.ts';

const certDer = randomBytes(300);
const keyDer = randomBytes(121);
const certPem = encodePem('CERTIFICATE', certDer);
const keyPem = encodePem('PRIVATE KEY', keyDer);

test('encodePem → decodePem round trips DER of any length, with 64-column lines', () => {
  for (const length of [1, 2, 3, 47, 48, 49, 96, 1000]) {
    const der = randomBytes(length);
    const pem = encodePem('CERTIFICATE', der);
    assert.ok(pem.endsWith('-----END CERTIFICATE-----\n'), `length ${length}`);
    assert.ok(pem.startsWith('-----BEGIN CERTIFICATE-----\n'));
    for (const line of pem.split('\n')) assert.ok(line.length <= 64 || line.startsWith('-----'), line);
    const blocks = decodePem(pem);
    assert.equal(blocks.length, 1);
    assert.equal(blocks[0]?.type, 'CERTIFICATE');
    assert.deepEqual(blocks[0]?.der, der);
  }
});

test('encodePem always ends with exactly one newline, so blocks concatenate safely', () => {
  for (const type of ['CERTIFICATE', 'PRIVATE KEY', 'EC PRIVATE KEY', 'CERTIFICATE REQUEST']) {
    const pem = encodePem(type, randomBytes(48));
    assert.ok(pem.endsWith('-----\n'), type);
    assert.ok(!pem.endsWith('\n\n'), type);
  }
});

test('decodePem reads concatenated blocks in order, with text around and between them', () => {
  const cases: Array<[string, string]> = [
    ['plain concatenation', certPem + keyPem + certPem],
    [
      'OpenSSL-style comments',
      `subject=CN=a\n${certPem}\nissuer=CN=b\n${keyPem}Bag Attributes\n${certPem}trailing`,
    ],
    ['CRLF line endings', (certPem + keyPem + certPem).replaceAll('\n', '\r\n')],
    ['no newline between blocks', certPem.trimEnd() + keyPem.trimEnd() + certPem.trimEnd()],
  ];
  for (const [name, text] of cases) {
    const blocks = decodePem(text);
    assert.deepEqual(
      blocks.map((block) => block.type),
      ['CERTIFICATE', 'PRIVATE KEY', 'CERTIFICATE'],
      name,
    );
    assert.deepEqual(blocks[0]?.der, certDer, name);
    assert.deepEqual(blocks[1]?.der, keyDer, name);
  }
});

test('decodePem refuses malformed input with MUTUAL_PKI_PEM_MALFORMED', () => {
  const body = certDer.toString('base64');
  const cases: Array<[string, string, RegExp?]> = [
    ['empty input', ''],
    ['whitespace only', ' \n\t\n'],
    ['not PEM at all', 'hello world'],
    ['raw DER bytes as text', certDer.toString('latin1')],
    ['BEGIN without END', `-----BEGIN CERTIFICATE-----\n${body}\n`, /no matching END/],
    [
      'truncated second block',
      `${certPem}-----BEGIN CERTIFICATE-----\n${body.slice(0, 40)}`,
      /no matching END/,
    ],
    [
      'truncated first block before a good one',
      `-----BEGIN CERTIFICATE-----\n${body.slice(0, 40)}\n${certPem}`,
    ],
    ['mismatched END', `-----BEGIN CERTIFICATE-----\n${body}\n-----END PRIVATE KEY-----\n`, /closed by/],
    ['non-base64 body', '-----BEGIN CERTIFICATE-----\n@@@@!!!!\n-----END CERTIFICATE-----\n', /base64/],
    [
      'body with a header line',
      `-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n${body}\n-----END CERTIFICATE-----\n`,
    ],
    ['empty body', '-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n'],
    ['padding only', '-----BEGIN CERTIFICATE-----\n====\n-----END CERTIFICATE-----\n'],
    ['padding in the middle', `-----BEGIN CERTIFICATE-----\nQQ==${body}\n-----END CERTIFICATE-----\n`],
    ['lower-case label', `-----BEGIN certificate-----\n${body}\n-----END certificate-----\n`],
    ['only an END line', `${body}\n-----END CERTIFICATE-----\n`],
  ];
  for (const [name, text, message] of cases) {
    assert.throws(
      () => decodePem(text, 'test.pem'),
      (error: unknown) => {
        assert.ok(isMutualError(error, 'MUTUAL_PKI_PEM_MALFORMED'), `${name}: got ${String(error)}`);
        assert.match(error.message, /^test\.pem: /, name);
        if (message) assert.match(error.message, message, name);
        return true;
      },
      name,
    );
  }
});

test('decodePem does not run away on a huge hostile input', () => {
  const started = performance.now();
  const hostile = '-----BEGIN CERTIFICATE-----\n'.repeat(20_000);
  throwsCode(() => decodePem(hostile), 'MUTUAL_PKI_PEM_MALFORMED');
  assert.ok(performance.now() - started < 2000, 'decoding 20k BEGIN lines took over 2 s');
});

test('decodePemOfType accepts the wanted types and names what it found otherwise', () => {
  assert.equal(decodePemOfType(certPem + certPem, ['CERTIFICATE']).length, 2);
  const ecPem = encodePem('EC PRIVATE KEY', keyDer);
  assert.equal(decodePemOfType(ecPem, ['PRIVATE KEY', 'EC PRIVATE KEY'])[0]?.type, 'EC PRIVATE KEY');

  const wrong: Array<[string, string, RegExp]> = [
    ['PKCS#8 key for a certificate', keyPem, /private key/],
    ['SEC1 key for a certificate', ecPem, /private key/],
    ['RSA key for a certificate', encodePem('RSA PRIVATE KEY', keyDer), /private key/],
    ['encrypted key for a certificate', encodePem('ENCRYPTED PRIVATE KEY', keyDer), /private key/],
    ['key hidden after a certificate', certPem + keyPem, /private key/],
    [
      'openssl ecparam -genkey output (EC PARAMETERS, then the key) for a certificate',
      execFileSync('openssl', ['ecparam', '-genkey', '-name', 'prime256v1'], { encoding: 'utf8' }),
      /found "EC PRIVATE KEY" \(this is a private key/,
    ],
    ['CSR for a certificate', encodePem('CERTIFICATE REQUEST', keyDer), /"CERTIFICATE REQUEST"/],
  ];
  for (const [name, text, message] of wrong) {
    assert.throws(
      () => decodePemOfType(text, ['CERTIFICATE'], 'ca.pem'),
      (error: unknown) => {
        assert.ok(isMutualError(error, 'MUTUAL_PKI_PEM_WRONG_TYPE'), `${name}: got ${String(error)}`);
        assert.match(error.message, message, name);
        assert.match(error.message, /expected "CERTIFICATE"/, name);
        assert.equal(error.detail.expected, 'CERTIFICATE', name);
        return true;
      },
      name,
    );
  }
  // A public key is not a private key: no warning about keys, but still the wrong type.
  const publicPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
    type: 'spki',
    format: 'pem',
  }) as string;
  throwsCode(
    () => decodePemOfType(publicPem, ['CERTIFICATE']),
    'MUTUAL_PKI_PEM_WRONG_TYPE',
    '',
    /"PUBLIC KEY"$/,
  );
  // Malformed input is reported as malformed, not as the wrong type.
  throwsCode(() => decodePemOfType('garbage', ['CERTIFICATE']), 'MUTUAL_PKI_PEM_MALFORMED');
});
