import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { fixedClock } from '../clock.ts';
import { type ErrorCode, isMutualError } from '../errors.ts';
import { throwsCode } from '../testing/expect-error.ts';
import { createIssuer, createTrustAnchor } from './authority.ts';
import {
  BUNDLE_REFRESH_HINT_S,
  bundleToJwks,
  bundleToPem,
  createTrustBundle,
  parseBundle,
  parseBundleJwks,
  parseBundlePem,
  type SpiffeBundleJwks,
} from './bundle.ts';
import { issueSvid } from './issue.ts';
import { generateKeyPair, privateKeyToPem } from './keys.ts';
import { decodePem, encodePem } from './pem.ts';

const TD = 'cluster.local';
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 0);
const clock = fixedClock(T0);

const oldRoot = await createTrustAnchor({ trustDomain: TD, clock });
const newRoot = await createTrustAnchor({ trustDomain: TD, clock, keyAlgorithm: 'ecdsa-p384' });
const issuer = await createIssuer(oldRoot, { trustDomain: TD, clock });
const workload = await generateKeyPair();
const leaf = await issueSvid(issuer, {
  spiffeId: `spiffe://${TD}/ns/a/sa/b`,
  publicKey: workload.publicKey,
  clock,
});

const der = (pem: string): Buffer => decodePem(pem)[0]!.der;
const oldDer = der(oldRoot.certificatePem);
const newDer = der(newRoot.certificatePem);
const tooManyRoots = await Promise.all(
  Array.from({ length: 65 }, async () =>
    der((await createTrustAnchor({ trustDomain: TD, clock })).certificatePem),
  ),
);

test('a PEM bundle with two roots (rotation) round-trips in order', () => {
  const bundle = createTrustBundle(TD, [oldDer, newDer], 7);
  assert.equal(bundle.trustDomain, TD);
  assert.equal(bundle.sequence, 7);
  assert.equal(bundle.rootsDer.length, 2);

  const pem = bundleToPem(bundle);
  assert.equal(pem, oldRoot.certificatePem + newRoot.certificatePem);
  assert.ok(pem.endsWith('-----END CERTIFICATE-----\n'));
  for (const parsed of [parseBundlePem(pem, TD), parseBundle(pem, TD), parseBundle(`\n\n${pem}`, TD)]) {
    assert.deepEqual(parsed.rootsDer, [oldDer, newDer]);
    assert.equal(parsed.trustDomain, TD);
  }
  // spiffe://cluster.local is accepted as a spelling of the trust domain.
  assert.equal(createTrustBundle(`spiffe://${TD}`, [oldDer]).trustDomain, TD);
  assert.equal(createTrustBundle('', [oldDer]).trustDomain, '');
});

test('a JWKS bundle follows the SPIFFE bundle format and round-trips', () => {
  const bundle = createTrustBundle(TD, [oldDer, newDer], 42);
  const jwks = bundleToJwks(bundle);
  assert.equal(jwks.spiffe_sequence, 42);
  assert.equal(jwks.spiffe_refresh_hint, BUNDLE_REFRESH_HINT_S);
  assert.equal(jwks.keys.length, 2);
  const expected = [
    { der: oldDer, crv: 'P-256' },
    { der: newDer, crv: 'P-384' },
  ];
  for (const [index, key] of jwks.keys.entries()) {
    assert.equal(key.use, 'x509-svid', `key ${index}`);
    assert.equal(key.kid, undefined, 'the SPIFFE bundle spec forbids kid on x509-svid keys');
    assert.equal(key.kty, 'EC');
    assert.equal(key.crv, expected[index]?.crv);
    assert.equal(typeof key.x, 'string');
    assert.equal(typeof key.y, 'string');
    assert.equal(key.d, undefined, 'no private key material');
    assert.ok(Array.isArray(key.x5c));
    assert.equal((key.x5c as string[]).length, 1);
    assert.deepEqual(Buffer.from((key.x5c as string[])[0]!, 'base64'), expected[index]?.der);
  }
  const text = JSON.stringify(jwks);
  for (const parsed of [parseBundleJwks(text, TD), parseBundle(text, TD), parseBundle(`  \n${text}`, TD)]) {
    assert.deepEqual(parsed.rootsDer, [oldDer, newDer]);
    assert.equal(parsed.sequence, 42);
  }
  assert.equal(parseBundleJwks(JSON.stringify({ keys: jwks.keys })).sequence, 1, 'sequence defaults to 1');
});

test('duplicate roots are kept once, in first-seen order', () => {
  const bundle = createTrustBundle(TD, [oldDer, newDer, oldDer, Buffer.from(newDer)]);
  assert.deepEqual(bundle.rootsDer, [oldDer, newDer]);
  assert.deepEqual(parseBundlePem(oldRoot.certificatePem.repeat(3)).rootsDer, [oldDer]);
  const jwks = bundleToJwks(createTrustBundle(TD, [oldDer]));
  const doubled = { keys: [...jwks.keys, ...jwks.keys] };
  assert.deepEqual(parseBundleJwks(JSON.stringify(doubled)).rootsDer, [oldDer]);
});

test('JWKS entries with another use are skipped; only x509-svid roots count', () => {
  const [root] = bundleToJwks(createTrustBundle(TD, [oldDer])).keys;
  const { x, y } = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const document: SpiffeBundleJwks = {
    keys: [
      { kty: 'EC', crv: 'P-256', x, y, use: 'jwt-svid', kid: 'jwt-1' },
      root!,
      { kty: 'EC', crv: 'P-256', x, y, kid: 'no-use' },
      { ...root!, use: 'sig' },
    ],
    spiffe_sequence: 3,
  };
  const bundle = parseBundleJwks(JSON.stringify(document));
  assert.deepEqual(bundle.rootsDer, [oldDer]);
  // Only jwt-svid keys: no X.509 root left.
  throwsCode(
    () => parseBundleJwks(JSON.stringify({ keys: [document.keys[0]] })),
    'MUTUAL_PKI_BUNDLE_INVALID',
    'only jwt-svid keys',
    /no root/,
  );
});

test('a JWKS key that does not match its x5c certificate is refused', () => {
  const [root] = bundleToJwks(createTrustBundle(TD, [oldDer])).keys;
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['another x', { ...root, x: other.x }, 'x'],
    ['another y', { ...root, y: other.y }, 'y'],
    ['another curve', { ...root, crv: 'P-384' }, 'crv'],
    ['RSA key type', { ...root, kty: 'RSA' }, 'kty'],
  ];
  for (const [name, key, field] of cases) {
    throwsCode(
      () => parseBundleJwks(JSON.stringify({ keys: [key] }), TD, 'bundle.json'),
      'MUTUAL_PKI_BUNDLE_INVALID',
      name,
      new RegExp(`does not match its x5c certificate \\(field ${field}\\)`),
    );
  }
});

test('non-CA certificates are refused in a bundle, in every format', () => {
  const leafDer = der(leaf.certificatePem);
  throwsCode(
    () => createTrustBundle(TD, [oldDer, leafDer]),
    'MUTUAL_PKI_BUNDLE_INVALID',
    'leaf DER',
    /root #2 .*not a CA/,
  );
  throwsCode(
    () => parseBundlePem(oldRoot.certificatePem + leaf.certificatePem),
    'MUTUAL_PKI_BUNDLE_INVALID',
    'leaf PEM',
  );
  const leafJwk = { kty: 'EC', use: 'x509-svid', x5c: [leafDer.toString('base64')] };
  throwsCode(
    () => parseBundleJwks(JSON.stringify({ keys: [leafJwk] })),
    'MUTUAL_PKI_BUNDLE_INVALID',
    'leaf JWKS',
  );
});

test('malformed and empty bundles are refused with stable codes', () => {
  const [root] = bundleToJwks(createTrustBundle(TD, [oldDer])).keys;
  const cases: Array<[string, () => unknown, ErrorCode, RegExp?]> = [
    ['no roots', () => createTrustBundle(TD, []), 'MUTUAL_PKI_BUNDLE_INVALID', /no root/],
    ['empty keys', () => parseBundleJwks('{"keys":[]}'), 'MUTUAL_PKI_BUNDLE_INVALID', /no root/],
    [
      'invalid JSON',
      () => parseBundleJwks('{"keys": [', TD, 'bundle.json'),
      'MUTUAL_PKI_BUNDLE_INVALID',
      /^bundle\.json: not valid JSON/,
    ],
    ['JSON via parseBundle', () => parseBundle('{not json'), 'MUTUAL_PKI_BUNDLE_INVALID', /not valid JSON/],
    ['JSON null', () => parseBundleJwks('null'), 'MUTUAL_PKI_BUNDLE_INVALID', /"keys" array/],
    ['JSON array', () => parseBundleJwks('[]'), 'MUTUAL_PKI_BUNDLE_INVALID', /"keys" array/],
    ['keys not an array', () => parseBundleJwks('{"keys":{}}'), 'MUTUAL_PKI_BUNDLE_INVALID', /"keys" array/],
    ['no keys field', () => parseBundleJwks('{}'), 'MUTUAL_PKI_BUNDLE_INVALID', /"keys" array/],
    [
      'x509-svid without x5c',
      () => parseBundleJwks(JSON.stringify({ keys: [{ ...root, x5c: undefined }] })),
      'MUTUAL_PKI_BUNDLE_INVALID',
      /no x5c/,
    ],
    [
      'x5c not strings',
      () => parseBundleJwks(JSON.stringify({ keys: [{ ...root, x5c: [1] }] })),
      'MUTUAL_PKI_BUNDLE_INVALID',
      /no x5c/,
    ],
    [
      'x5c garbage',
      () => parseBundleJwks(JSON.stringify({ keys: [{ ...root, x5c: ['AAAA'] }] })),
      'MUTUAL_PKI_BUNDLE_INVALID',
    ],
    ['empty PEM', () => parseBundlePem(''), 'MUTUAL_PKI_PEM_MALFORMED'],
    [
      'truncated PEM',
      () => parseBundlePem(oldRoot.certificatePem + newRoot.certificatePem.slice(0, 100)),
      'MUTUAL_PKI_PEM_MALFORMED',
    ],
    [
      'private key in a PEM bundle',
      () => parseBundlePem(oldRoot.certificatePem + privateKeyToPem(oldRoot.keys.privateKey)),
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      /private key/,
    ],
    [
      'garbage DER in PEM',
      () => parseBundlePem(encodePem('CERTIFICATE', Buffer.from('junk'))),
      'MUTUAL_PKI_BUNDLE_INVALID',
    ],
    [
      'invalid trust domain',
      () => createTrustBundle('Not A Domain', [oldDer]),
      'MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID',
    ],
    ['too many roots', () => createTrustBundle(TD, tooManyRoots), 'MUTUAL_PKI_BUNDLE_INVALID', /at most 64/],
  ];
  for (const [name, fn, code, message] of cases) throwsCode(fn, code, name, message);
});

test('the bundle is frozen', () => {
  const bundle = createTrustBundle(TD, [oldDer]);
  assert.ok(Object.isFrozen(bundle));
  assert.ok(Object.isFrozen(bundle.rootsDer));
});

test('an intermediate is refused as a trust anchor', async () => {
  const clock = fixedClock(Date.parse('2026-06-01T00:00:00Z'));
  const root = await createTrustAnchor({ trustDomain: 'cluster.local', clock });
  const intermediate = await createIssuer(root, { trustDomain: 'cluster.local', clock });
  assert.throws(
    () => parseBundlePem(intermediate.certificatePem),
    (error: unknown) =>
      isMutualError(error, 'MUTUAL_PKI_BUNDLE_INVALID') &&
      // One line, as `mutual cert verify --bundle issuer.crt` prints it (it broke after "O=Mutual").
      /^trust bundle root #1 \(O=Mutual, CN=Mutual issuer cluster\.local [0-9a-f]+\) is not self-signed/.test(
        error.message,
      ) &&
      !error.message.includes('\n'),
  );
});
