import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { fixedClock } from '../clock.ts';
import { type ErrorCode, isMutualError } from '../errors.ts';
import { rejectsCode } from '../testing/expect-error.ts';
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  DAY_MS,
  loadAuthority,
} from './authority.ts';
import { parseCertificatesPem } from './certificate.ts';
import {
  DEFAULT_SVID_LIFETIME_MS,
  DEFAULT_SVID_SKEW_MS,
  type IssueSvidOptions,
  issueSvid,
  MAX_SVID_LIFETIME_MS,
} from './issue.ts';
import { generateKeyPair, type KeyPair, privateKeyToPem } from './keys.ts';
import { decodePem } from './pem.ts';
import { createPeerVerifier } from './verify-peer.ts';
import { signingAlgorithmFor, toCryptoKey, x509 } from './x509-library.ts';

const TD = 'cluster.local';
const ID = `spiffe://${TD}/ns/shop/sa/web`;
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 789);
const HOUR_MS = 3600_000;
const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

const seconds = (ms: number): number => Math.floor(ms / 1000) * 1000;

const clock = fixedClock(T0);
const anchor = await createTrustAnchor({ trustDomain: TD, clock });
const issuer = await createIssuer(anchor, { trustDomain: TD, clock });
const workload = await generateKeyPair();

function issue(overrides: Partial<IssueSvidOptions> = {}) {
  return issueSvid(issuer, {
    spiffeId: ID,
    publicKey: workload.publicKey,
    clock: fixedClock(T0),
    ...overrides,
  });
}

function parse(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(decodePem(pem)[0]!.der);
}

test('the leaf carries exactly the extensions the SPIFFE X509-SVID spec requires', async () => {
  const svid = await issue();
  const leaf = parse(svid.certificatePem);
  const node = new NodeX509Certificate(svid.certificatePem);

  assert.equal(leaf.subject, '', 'subject must be empty');
  assert.equal(node.subject ?? '', '', 'node:crypto reports an empty subject as undefined or empty');
  assert.equal(leaf.issuer, issuer.certificate.subject);
  assert.deepEqual(
    Array.from(leaf.extensions, (extension) => extension.type).sort(),
    Object.values(OID).slice(0, 6).sort(),
  );

  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  assert.ok(san?.critical, 'SAN must be critical when the subject is empty');
  assert.deepEqual(san.names.toJSON(), [{ type: 'url', value: ID }]);
  assert.equal(node.subjectAltName, `URI:${ID}`);

  const basic = leaf.getExtension(x509.BasicConstraintsExtension);
  assert.ok(basic?.critical);
  assert.equal(basic.ca, false);
  assert.equal(basic.pathLength, undefined);
  assert.equal(node.ca, false);

  const usage = leaf.getExtension(x509.KeyUsagesExtension);
  assert.ok(usage?.critical);
  assert.equal(usage.usages, x509.KeyUsageFlags.digitalSignature, 'keyUsage is digitalSignature only');

  const extended = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  assert.ok(extended);
  assert.deepEqual([...extended.usages].sort(), [OID.serverAuth, OID.clientAuth].sort());

  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension);
  assert.equal(aki?.keyId, issuer.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  assert.ok(!aki?.critical);
  assert.ok(!leaf.getExtension(x509.SubjectKeyIdentifierExtension)?.critical);

  assert.ok(node.checkIssued(new NodeX509Certificate(issuer.certificatePem)));
  assert.ok(node.verify(issuer.keys.publicKey));
  assert.ok(node.publicKey.equals(workload.publicKey));
  assert.equal(svid.spiffeId, ID);
});

test('the chain is the leaf then the issuer, each PEM ending in a newline', async () => {
  const svid = await issue();
  const blocks = decodePem(svid.chainPem);
  assert.equal(blocks.length, 2);
  assert.deepEqual(blocks[0]?.der, decodePem(svid.certificatePem)[0]?.der);
  assert.deepEqual(blocks[1]?.der, decodePem(issuer.certificatePem)[0]?.der);
  assert.ok(svid.certificatePem.endsWith('-----\n'));
  assert.ok(svid.chainPem.startsWith(svid.certificatePem));
});

test('validity is [now − skew, now + lifetime + skew], to the second', async () => {
  const cases: Array<[string, number | undefined, number | undefined, number, number]> = [
    ['defaults', undefined, undefined, DEFAULT_SVID_LIFETIME_MS, DEFAULT_SVID_SKEW_MS],
    ['1 h, no skew', HOUR_MS, 0, HOUR_MS, 0],
    ['5 min, 1 h skew', 5 * 60_000, HOUR_MS, 5 * 60_000, HOUR_MS],
    ['1 ms', 1, 0, 1, 0],
    ['the 90 d maximum', MAX_SVID_LIFETIME_MS, 30_000, MAX_SVID_LIFETIME_MS, 30_000],
  ];
  for (const [name, lifetimeMs, skewMs, expectedLifetimeMs, expectedSkewMs] of cases) {
    // With a 1 h skew, notBefore would precede the issuer: then it starts at the issuer's notBefore.
    const svid = await issue({ lifetimeMs, skewMs });
    const leaf = parse(svid.certificatePem);
    const wantNotBefore = Math.max(seconds(T0 - expectedSkewMs), issuer.notBeforeMs);
    assert.equal(svid.notBeforeMs, wantNotBefore, `${name} notBefore`);
    assert.equal(svid.notAfterMs, seconds(T0 + expectedLifetimeMs + expectedSkewMs), `${name} notAfter`);
    assert.equal(
      leaf.notBefore.getTime(),
      svid.notBeforeMs,
      `${name}: reported notBefore is what the certificate says`,
    );
    assert.equal(
      leaf.notAfter.getTime(),
      svid.notAfterMs,
      `${name}: reported notAfter is what the certificate says`,
    );
    assert.equal(svid.isClampedToIssuer, false, name);
  }
  assert.equal(DEFAULT_SVID_SKEW_MS, 20_000);
  assert.equal(DEFAULT_SVID_LIFETIME_MS, DAY_MS);
});

test('a leaf never outlives its issuer', async () => {
  const shortIssuer = await createIssuer(anchor, {
    trustDomain: TD,
    clock: fixedClock(T0),
    lifetimeMs: 2 * HOUR_MS,
  });
  const cases: Array<[string, number, number, boolean]> = [
    ['24 h under a 2 h issuer', DAY_MS, shortIssuer.notAfterMs, true],
    ['a second inside the issuer end', 2 * HOUR_MS - 21_000, seconds(T0 + 2 * HOUR_MS - 1000), false],
    ['10 min fits', 10 * 60_000, seconds(T0 + 10 * 60_000 + 20_000), false],
  ];
  for (const [name, lifetimeMs, notAfterMs, isClamped] of cases) {
    const svid = await issueSvid(shortIssuer, {
      spiffeId: ID,
      publicKey: workload.publicKey,
      clock: fixedClock(T0),
      lifetimeMs,
    });
    assert.equal(svid.notAfterMs, notAfterMs, name);
    assert.equal(svid.isClampedToIssuer, isClamped, name);
    assert.ok(svid.notAfterMs <= shortIssuer.notAfterMs, name);
    assert.equal(parse(svid.certificatePem).notAfter.getTime(), svid.notAfterMs, name);
  }
  // One second before the issuer expires: a one-second certificate, clamped.
  const lastSecond = await issueSvid(shortIssuer, {
    spiffeId: ID,
    publicKey: workload.publicKey,
    clock: fixedClock(shortIssuer.notAfterMs - 1000),
  });
  assert.equal(lastSecond.notAfterMs, shortIssuer.notAfterMs);
  assert.ok(lastSecond.isClampedToIssuer);
});

test('an issuer outside its validity cannot issue', async () => {
  const cases: Array<[string, number]> = [
    ['expired issuer', issuer.notAfterMs + 1],
    ['long-expired issuer', issuer.notAfterMs + 365 * DAY_MS],
    ['issuer not yet valid', issuer.notBeforeMs - 1],
  ];
  for (const [name, atMs] of cases) {
    await rejectsCode(issue({ clock: fixedClock(atMs) }), 'MUTUAL_PKI_ISSUER_INVALID', name);
  }
});

test('lifetimes and skews out of range are refused', async () => {
  const cases: Array<[string, Partial<IssueSvidOptions>]> = [
    ['lifetime 0', { lifetimeMs: 0 }],
    ['negative lifetime', { lifetimeMs: -HOUR_MS }],
    ['NaN lifetime', { lifetimeMs: Number.NaN }],
    ['infinite lifetime', { lifetimeMs: Number.POSITIVE_INFINITY }],
    ['lifetime over 90 d', { lifetimeMs: MAX_SVID_LIFETIME_MS + 1 }],
    ['lifetime of a year', { lifetimeMs: 365 * DAY_MS }],
    ['negative skew', { skewMs: -1 }],
    ['skew over 1 h', { skewMs: HOUR_MS + 1 }],
    ['NaN skew', { skewMs: Number.NaN }],
  ];
  for (const [name, overrides] of cases) {
    await rejectsCode(issue(overrides), 'MUTUAL_PKI_LIFETIME_INVALID', name);
  }
  assert.equal(MAX_SVID_LIFETIME_MS, 90 * DAY_MS);
});

test('identities outside the issuer trust domain, or without a path, are refused', async () => {
  const cases: Array<[string, string, ErrorCode]> = [
    ['another trust domain', 'spiffe://evil.example/ns/shop/sa/web', 'MUTUAL_PKI_TRUST_DOMAIN_REJECTED'],
    [
      'a sub-domain of the trust domain',
      'spiffe://x.cluster.local/ns/shop/sa/web',
      'MUTUAL_PKI_TRUST_DOMAIN_REJECTED',
    ],
    [
      'a suffix-sharing trust domain',
      'spiffe://evilcluster.local/ns/a/sa/b',
      'MUTUAL_PKI_TRUST_DOMAIN_REJECTED',
    ],
    ['the trust domain ID alone', `spiffe://${TD}`, 'MUTUAL_SPIFFE_ID_INVALID'],
    ['not a SPIFFE ID', 'https://cluster.local/ns/a/sa/b', 'MUTUAL_SPIFFE_ID_INVALID'],
    ['upper-case trust domain', 'spiffe://CLUSTER.local/ns/a/sa/b', 'MUTUAL_SPIFFE_ID_INVALID'],
    ['empty', '', 'MUTUAL_SPIFFE_ID_INVALID'],
  ];
  for (const [name, spiffeId, code] of cases) await rejectsCode(issue({ spiffeId }), code, name);
  await assert.rejects(issue({ spiffeId: `spiffe://${TD}` }), (error: unknown) => {
    assert.ok(isMutualError(error, 'MUTUAL_SPIFFE_ID_INVALID'));
    assert.equal(error.detail.rule, 'path-missing');
    return true;
  });
});

test('DNS names are added after the URI SAN, lower-cased; bad ones are refused', async () => {
  const svid = await issue({ dnsNames: ['Web.Shop.svc', '*.shop.svc.cluster.local'] });
  const san = parse(svid.certificatePem).getExtension(x509.SubjectAlternativeNameExtension);
  assert.deepEqual(san?.names.toJSON(), [
    { type: 'url', value: ID },
    { type: 'dns', value: 'web.shop.svc' },
    { type: 'dns', value: '*.shop.svc.cluster.local' },
  ]);
  const bad = [
    '',
    'under_score.example',
    '-leading.example',
    'trailing-.example',
    'double..dot',
    'has space.example',
    '*',
    'a.*.example',
    '**.example',
    `${'a'.repeat(64)}.example`,
    `${'a.'.repeat(127)}a`,
    'ünicode.example',
    'web.shop.svc\u0000evil',
    '10.0.0.1:80',
    'spiffe://cluster.local/x',
  ];
  for (const dnsName of bad) {
    await rejectsCode(issue({ dnsNames: [dnsName] }), 'MUTUAL_PKI_DNS_NAME_INVALID', JSON.stringify(dnsName));
  }
});

test('serial numbers are random, distinct, positive and at most 20 octets', async () => {
  const serials = new Set<string>();
  for (let i = 0; i < 24; i++) {
    const svid = await issue();
    const certificateSerial = parse(svid.certificatePem).serialNumber;
    assert.equal(certificateSerial.toLowerCase(), svid.serialNumber.toLowerCase());
    assert.equal(new NodeX509Certificate(svid.certificatePem).serialNumber.toLowerCase(), svid.serialNumber);
    assert.match(svid.serialNumber, /^[0-9a-f]{32}$/);
    const firstByte = Number.parseInt(svid.serialNumber.slice(0, 2), 16);
    assert.ok(firstByte < 0x80, 'the high bit would make the DER INTEGER negative');
    assert.ok(BigInt(`0x${svid.serialNumber}`) > 2n ** 64n, 'serial carries fewer than 64 random bits');
    serials.add(svid.serialNumber);
  }
  assert.equal(serials.size, 24);
});

test('workload keys: P-384 and RSA 2048 accepted (RSA also keyEncipherment), weak keys refused', async () => {
  const p384 = await generateKeyPair('ecdsa-p384');
  const p384Leaf = parse((await issue({ publicKey: p384.publicKey })).certificatePem);
  assert.equal(p384Leaf.getExtension(x509.KeyUsagesExtension)?.usages, x509.KeyUsageFlags.digitalSignature);

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaLeaf = parse((await issue({ publicKey: rsa.publicKey })).certificatePem);
  assert.equal(
    rsaLeaf.getExtension(x509.KeyUsagesExtension)?.usages,
    x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  );

  const weak: Array<[string, ReturnType<typeof generateKeyPairSync>['publicKey']]> = [
    ['RSA 1024', generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey],
    ['Ed25519', generateKeyPairSync('ed25519').publicKey],
    ['P-521', generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey],
  ];
  for (const [name, publicKey] of weak) {
    await rejectsCode(issue({ publicKey }), 'MUTUAL_PKI_KEY_UNSUPPORTED', name, /workload key/);
  }
});

test('a P-384 issuer signs leaves with ECDSA SHA-384', async () => {
  const anchor384 = await createTrustAnchor({ trustDomain: TD, clock, keyAlgorithm: 'ecdsa-p384' });
  const issuer384 = await createIssuer(anchor384, { trustDomain: TD, clock, keyAlgorithm: 'ecdsa-p384' });
  const svid = await issueSvid(issuer384, { spiffeId: ID, publicKey: workload.publicKey, clock });
  const leaf = parse(svid.certificatePem);
  assert.equal(leaf.signatureAlgorithm.hash.name, 'SHA-384');
  assert.ok(new NodeX509Certificate(svid.certificatePem).verify(issuer384.keys.publicKey));
});

// OpenSSL writes names as UTF8String, Mutual and Go as PrintableString. A certificate's issuer
// field must be its issuer's subject byte for byte: peers that compare names as bytes (our
// verifier, Go's crypto/x509) find no issuer otherwise. An issuer made with `openssl x509 -req`
// under the mesh's anchor signed leaves nobody in the mesh trusted (seen in a QA pass rotating
// the issuer of a running mesh).
test('a CA whose subject is a UTF8String (as OpenSSL writes it) signs certificates peers chain to it', async () => {
  const utf8Name = (cn: string) => new x509.Name([{ '2.5.4.3': [{ utf8String: cn }] }]);
  const now = clock.now();
  const validity = { notBefore: new Date(now - HOUR_MS), notAfter: new Date(now + 30 * DAY_MS) };
  const ca = async (subjectKey: KeyPair, issuerKey: KeyPair, isPathLenZero: boolean) => [
    new x509.BasicConstraintsExtension(true, isPathLenZero ? 0 : undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${TD}` }]),
    await x509.SubjectKeyIdentifierExtension.create(toCryptoKey(subjectKey.publicKey)),
    await x509.AuthorityKeyIdentifierExtension.create(toCryptoKey(issuerKey.publicKey)),
  ];
  const verifies = async (signer: CertificateAuthority, root: CertificateAuthority) => {
    const svid = await issueSvid(signer, { spiffeId: ID, publicKey: workload.publicKey, clock });
    const chain = parseCertificatesPem(svid.chainPem, 'chain').map((certificate) => certificate.der);
    const leafIssuer = new x509.X509Certificate(chain[0]!).issuerName.toArrayBuffer();
    assert.deepEqual(Buffer.from(leafIssuer), Buffer.from(signer.certificate.subjectName.toArrayBuffer()));
    const verdict = createPeerVerifier({
      anchors: [Buffer.from(root.certificate.rawData)],
      clock,
    }).verifySvid(chain, { expectedId: ID });
    assert.ok(verdict.ok, JSON.stringify(verdict));
  };

  // An issuer made by OpenSSL under Mutual's anchor.
  const issuerKeys = await generateKeyPair();
  const opensslIssuer = await x509.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: utf8Name('identity.mutual.cluster.local'),
    issuer: anchor.certificate.subjectName,
    ...validity,
    publicKey: toCryptoKey(issuerKeys.publicKey),
    signingKey: toCryptoKey(anchor.keys.privateKey),
    signingAlgorithm: signingAlgorithmFor(anchor.keys.privateKey),
    extensions: await ca(issuerKeys, anchor.keys, true),
  });
  const loadedIssuer = loadAuthority({
    certificatePem: opensslIssuer.toString('pem'),
    privateKeyPem: privateKeyToPem(issuerKeys.privateKey),
    clock,
  });
  await verifies(loadedIssuer, anchor);

  // An anchor made by OpenSSL, and an issuer `mutual` makes under it.
  const rootKeys = await generateKeyPair();
  const opensslRoot = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '02',
    name: utf8Name('Example root'),
    ...validity,
    keys: { privateKey: toCryptoKey(rootKeys.privateKey), publicKey: toCryptoKey(rootKeys.publicKey) },
    signingAlgorithm: signingAlgorithmFor(rootKeys.privateKey),
    extensions: await ca(rootKeys, rootKeys, false),
  });
  const loadedRoot = loadAuthority({
    certificatePem: opensslRoot.toString('pem'),
    privateKeyPem: privateKeyToPem(rootKeys.privateKey),
    clock,
  });
  await verifies(await createIssuer(loadedRoot, { trustDomain: TD, clock }), loadedRoot);
});
