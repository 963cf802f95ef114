import assert from 'node:assert/strict';
import { X509Certificate as NodeX509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1X509 from '@peculiar/asn1-x509';
import { fixedClock } from '../clock.ts';
import { type ErrorCode, isMutualError } from '../errors.ts';
import { rejectsCode, throwsCode } from '../testing/expect-error.ts';
import {
  type CertificateAuthority,
  createIssuer,
  createTrustAnchor,
  DAY_MS,
  DEFAULT_ANCHOR_LIFETIME_MS,
  DEFAULT_ISSUER_LIFETIME_MS,
  loadAuthority,
} from './authority.ts';
import { issueSvid } from './issue.ts';
import { describeKey, generateKeyPair, isSameKey, privateKeyToPem } from './keys.ts';
import { encodePem } from './pem.ts';
import { toCryptoKey, x509 } from './x509-library.ts';

const TD = 'cluster.local';
/** Fixed time with a millisecond part, so truncation to whole seconds shows. */
const T0 = Date.UTC(2026, 5, 1, 12, 0, 0, 789);
const OID_NAME_CONSTRAINTS = '2.5.29.30';

function extension(authority: CertificateAuthority, oid: string): x509.Extension | undefined {
  return authority.certificate.extensions.find((candidate) => candidate.type === oid);
}

function nodeCertificate(pem: string): NodeX509Certificate {
  return new NodeX509Certificate(pem);
}

const clock = fixedClock(T0);
const anchor = await createTrustAnchor({ trustDomain: TD, clock });
const issuer = await createIssuer(anchor, { trustDomain: TD, clock });

test('the trust anchor is a self-signed CA with critical keyCertSign', async () => {
  const node = nodeCertificate(anchor.certificatePem);
  assert.equal(anchor.trustDomain, TD);
  assert.ok(await anchor.certificate.isSelfSigned());
  assert.equal(anchor.certificate.subject, anchor.certificate.issuer);
  assert.ok(node.checkIssued(node));
  assert.ok(node.verify(anchor.keys.publicKey));
  assert.ok(node.ca);
  assert.deepEqual(anchor.chainPem, []);

  const basic = anchor.certificate.getExtension(x509.BasicConstraintsExtension);
  assert.ok(basic?.ca);
  assert.ok(basic.critical);
  assert.equal(basic.pathLength, undefined);
  const usage = anchor.certificate.getExtension(x509.KeyUsagesExtension);
  assert.ok(usage?.critical);
  assert.equal(usage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.ok(anchor.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  const san = anchor.certificate.getExtension(x509.SubjectAlternativeNameExtension);
  assert.deepEqual(san?.names.toJSON(), [{ type: 'url', value: `spiffe://${TD}` }]);
  assert.match(anchor.certificate.subject, /CN=Mutual trust anchor cluster\.local [0-9a-f]{8}/);
  assert.ok(isSameKey(node.publicKey, anchor.keys.publicKey));
  assert.ok(anchor.certificatePem.endsWith('-----END CERTIFICATE-----\n'));
});

test('the anchor is valid from a minute before now for its lifetime, in whole seconds', async () => {
  const cases: Array<[string, number | undefined, number]> = [
    ['default lifetime', undefined, DEFAULT_ANCHOR_LIFETIME_MS],
    ['one day', DAY_MS, DAY_MS],
    ['one hour', 3600_000, 3600_000],
  ];
  for (const [name, lifetimeMs, expectedMs] of cases) {
    const made = await createTrustAnchor({ trustDomain: TD, clock: fixedClock(T0), lifetimeMs });
    assert.equal(made.notBeforeMs, Math.floor((T0 - 60_000) / 1000) * 1000, name);
    assert.equal(made.notAfterMs, Math.floor((T0 + expectedMs) / 1000) * 1000, name);
    assert.equal(made.certificate.notAfter.getTime(), made.notAfterMs, name);
  }
});

test('two anchors of one trust domain have distinct subjects and serials', async () => {
  const other = await createTrustAnchor({ trustDomain: TD, clock });
  assert.notEqual(other.certificate.subject, anchor.certificate.subject);
  assert.notEqual(other.certificate.serialNumber, anchor.certificate.serialNumber);
});

test('the issuer is a pathLen 0 CA whose AKI is the anchor SKI, with a URI name constraint', async () => {
  const node = nodeCertificate(issuer.certificatePem);
  const anchorNode = nodeCertificate(anchor.certificatePem);
  assert.ok(node.checkIssued(anchorNode), 'issuer was not issued by the anchor');
  assert.ok(!anchorNode.checkIssued(node));
  assert.ok(node.verify(anchor.keys.publicKey));
  assert.ok(!(await issuer.certificate.isSelfSigned()));
  assert.equal(issuer.certificate.issuer, anchor.certificate.subject);
  assert.equal(issuer.trustDomain, TD);
  assert.deepEqual(issuer.chainPem, []);

  const basic = issuer.certificate.getExtension(x509.BasicConstraintsExtension);
  assert.ok(basic?.ca);
  assert.ok(basic.critical);
  assert.equal(basic.pathLength, 0);
  const usage = issuer.certificate.getExtension(x509.KeyUsagesExtension);
  assert.ok(usage?.critical);
  assert.equal(usage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  const aki = issuer.certificate.getExtension(x509.AuthorityKeyIdentifierExtension);
  const anchorSki = anchor.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  assert.ok(aki?.keyId);
  assert.equal(aki.keyId, anchorSki?.keyId);
  assert.ok(!aki.critical);
  const ski = issuer.certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  assert.notEqual(ski?.keyId, anchorSki?.keyId);

  const constraint = extension(issuer, OID_NAME_CONSTRAINTS);
  assert.ok(constraint, 'nameConstraints missing');
  assert.ok(constraint.critical);
  const parsed = AsnConvert.parse(constraint.value, asn1X509.NameConstraints);
  assert.equal(parsed.excludedSubtrees, undefined);
  const permitted = [...(parsed.permittedSubtrees ?? [])].map(
    (subtree) => subtree.base.uniformResourceIdentifier,
  );
  // The host form (RFC 5280 §4.2.1.10), never spiffe://cluster.local.
  assert.deepEqual(permitted, [TD]);
});

test('isNameConstrained: false leaves the name constraint out', async () => {
  const open = await createIssuer(anchor, { trustDomain: TD, clock, isNameConstrained: false });
  assert.equal(extension(open, OID_NAME_CONSTRAINTS), undefined);
  assert.equal(open.certificate.getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
  const constrained = await createIssuer(anchor, { trustDomain: TD, clock, isNameConstrained: true });
  assert.ok(extension(constrained, OID_NAME_CONSTRAINTS));
});

test('the issuer lifetime is clamped to the anchor notAfter', async () => {
  const shortAnchor = await createTrustAnchor({
    trustDomain: TD,
    clock: fixedClock(T0),
    lifetimeMs: 30 * DAY_MS,
  });
  const cases: Array<[string, number | undefined, number]> = [
    ['default 365 d under a 30 d anchor', undefined, shortAnchor.notAfterMs],
    ['60 d under a 30 d anchor', 60 * DAY_MS, shortAnchor.notAfterMs],
    ['10 d fits', 10 * DAY_MS, Math.floor((T0 + 10 * DAY_MS) / 1000) * 1000],
  ];
  for (const [name, lifetimeMs, expectedNotAfterMs] of cases) {
    const made = await createIssuer(shortAnchor, { trustDomain: TD, clock: fixedClock(T0), lifetimeMs });
    assert.equal(made.notAfterMs, expectedNotAfterMs, name);
    assert.ok(made.notAfterMs <= shortAnchor.notAfterMs, name);
  }
  // Late in the anchor's life the issuer gets only what remains.
  const late = fixedClock(shortAnchor.notAfterMs - DAY_MS);
  const lateIssuer = await createIssuer(shortAnchor, { trustDomain: TD, clock: late });
  assert.equal(lateIssuer.notAfterMs, shortAnchor.notAfterMs);
  assert.equal(issuer.notAfterMs, Math.floor((T0 + DEFAULT_ISSUER_LIFETIME_MS) / 1000) * 1000);
});

test('createIssuer refuses an anchor outside its validity', async () => {
  await rejectsCode(
    createIssuer(anchor, { trustDomain: TD, clock: fixedClock(anchor.notAfterMs + 1000) }),
    'MUTUAL_PKI_ISSUER_INVALID',
    'expired anchor',
  );
  await rejectsCode(
    createIssuer(anchor, { trustDomain: TD, clock: fixedClock(anchor.notBeforeMs - 1000) }),
    'MUTUAL_PKI_ISSUER_INVALID',
    'anchor not yet valid',
  );
});

test('CA creation refuses bad lifetimes and trust domains', async () => {
  const bad: Array<[string, number]> = [
    ['zero', 0],
    ['negative', -DAY_MS],
    ['NaN', Number.NaN],
    ['infinite', Number.POSITIVE_INFINITY],
    ['over 100 years', 101 * 365 * DAY_MS],
  ];
  for (const [name, lifetimeMs] of bad) {
    await rejectsCode(
      createTrustAnchor({ trustDomain: TD, clock, lifetimeMs }),
      'MUTUAL_PKI_LIFETIME_INVALID',
      `anchor ${name}`,
    );
    await rejectsCode(
      createIssuer(anchor, { trustDomain: TD, clock, lifetimeMs }),
      'MUTUAL_PKI_LIFETIME_INVALID',
      `issuer ${name}`,
    );
  }
  for (const trustDomain of ['', 'Cluster.Local', 'spiffe://cluster.local/x', 'a b', 'td:443']) {
    await rejectsCode(
      createTrustAnchor({ trustDomain, clock }),
      'MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID',
      `anchor trust domain ${JSON.stringify(trustDomain)}`,
    );
    await rejectsCode(
      createIssuer(anchor, { trustDomain, clock }),
      'MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID',
      `issuer trust domain ${JSON.stringify(trustDomain)}`,
    );
  }
});

test('keyAlgorithm ecdsa-p384 makes P-384 anchors and issuers signed with SHA-384', async () => {
  const anchor384 = await createTrustAnchor({ trustDomain: TD, clock, keyAlgorithm: 'ecdsa-p384' });
  const issuer384 = await createIssuer(anchor384, { trustDomain: TD, clock, keyAlgorithm: 'ecdsa-p384' });
  assert.equal(describeKey(anchor384.keys.publicKey).label, 'ECDSA P-384');
  assert.equal(describeKey(issuer384.keys.publicKey).label, 'ECDSA P-384');
  assert.equal(issuer384.certificate.signatureAlgorithm.hash.name, 'SHA-384');
  assert.ok(nodeCertificate(issuer384.certificatePem).verify(anchor384.keys.publicKey));
});

test('loadAuthority round-trips an issuer from PEM and it can sign', async () => {
  const loaded = loadAuthority({
    certificatePem: issuer.certificatePem,
    privateKeyPem: privateKeyToPem(issuer.keys.privateKey),
    clock,
  });
  assert.equal(loaded.trustDomain, TD);
  assert.deepEqual(loaded.chainPem, []);
  assert.equal(loaded.notAfterMs, issuer.notAfterMs);
  assert.equal(loaded.notBeforeMs, issuer.notBeforeMs);
  assert.equal(loaded.certificatePem, issuer.certificatePem);
  assert.ok(isSameKey(loaded.keys.publicKey, issuer.keys.publicKey));
  const workload = await generateKeyPair();
  const svid = await issueSvid(loaded, {
    spiffeId: `spiffe://${TD}/ns/a/sa/b`,
    publicKey: workload.publicKey,
    clock,
  });
  assert.ok(nodeCertificate(svid.certificatePem).verify(issuer.keys.publicKey));

  const loadedAnchor = loadAuthority({
    certificatePem: anchor.certificatePem,
    privateKeyPem: privateKeyToPem(anchor.keys.privateKey),
    clock,
  });
  assert.equal(loadedAnchor.trustDomain, TD);
});

test('loadAuthority refuses mismatched, non-CA, expired and malformed input', async () => {
  const stranger = await generateKeyPair();
  const workload = await generateKeyPair();
  const leaf = await issueSvid(issuer, {
    spiffeId: `spiffe://${TD}/ns/a/sa/b`,
    publicKey: workload.publicKey,
    clock,
  });
  const issuerKeyPem = privateKeyToPem(issuer.keys.privateKey);

  // A CA certificate without keyCertSign, built by hand.
  const noSignKeys = await generateKeyPair();
  const noSign = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=no keyCertSign',
    notBefore: new Date(T0 - DAY_MS),
    notAfter: new Date(T0 + DAY_MS),
    keys: { privateKey: toCryptoKey(noSignKeys.privateKey), publicKey: toCryptoKey(noSignKeys.publicKey) },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });

  // A CA as `openssl req -x509` makes it without an extfile: no SPIFFE ID, so no trust domain.
  const noSpiffe = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '02',
    name: 'CN=no SPIFFE ID',
    notBefore: new Date(T0 - DAY_MS),
    notAfter: new Date(T0 + DAY_MS),
    keys: { privateKey: toCryptoKey(noSignKeys.privateKey), publicKey: toCryptoKey(noSignKeys.publicKey) },
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });

  const cases: Array<[string, string, string, ErrorCode, RegExp?]> = [
    [
      'a CA without a SPIFFE ID',
      encodePem('CERTIFICATE', new Uint8Array(noSpiffe.rawData)),
      privateKeyToPem(noSignKeys.privateKey),
      'MUTUAL_PKI_ISSUER_INVALID',
      /has no spiffe:\/\/<trust-domain> URI SAN.*`mutual ca issuer`.*subjectAltName=URI:spiffe:\/\/<trust-domain>/,
    ],
    [
      'key of another CA',
      issuer.certificatePem,
      privateKeyToPem(anchor.keys.privateKey),
      'MUTUAL_PKI_KEY_MISMATCH',
    ],
    [
      // Istio's cert-chain.pem written root first: the key is the second certificate's.
      'a chain with the root before the issuer',
      anchor.certificatePem + issuer.certificatePem,
      privateKeyToPem(issuer.keys.privateKey),
      'MUTUAL_PKI_KEY_MISMATCH',
      /belongs to certificate 2 in the file.*issuer's own certificate first, then its chain/,
    ],
    [
      'a stranger key',
      issuer.certificatePem,
      privateKeyToPem(stranger.privateKey),
      'MUTUAL_PKI_KEY_MISMATCH',
      /does not belong/,
    ],
    [
      'a leaf with its own key',
      leaf.certificatePem,
      privateKeyToPem(workload.privateKey),
      'MUTUAL_PKI_ISSUER_INVALID',
      /not a CA/,
    ],
    [
      'a CA without keyCertSign',
      encodePem('CERTIFICATE', new Uint8Array(noSign.rawData)),
      privateKeyToPem(noSignKeys.privateKey),
      'MUTUAL_PKI_ISSUER_INVALID',
      /keyCertSign/,
    ],
    [
      'the key where the certificate belongs',
      issuerKeyPem,
      issuerKeyPem,
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      /private key/,
    ],
    [
      'the certificate where the key belongs',
      issuer.certificatePem,
      issuer.certificatePem,
      'MUTUAL_PKI_PEM_WRONG_TYPE',
    ],
    [
      'garbage DER',
      encodePem('CERTIFICATE', Buffer.from('not DER at all')),
      issuerKeyPem,
      'MUTUAL_PKI_CERT_MALFORMED',
    ],
    ['not PEM', 'hello', issuerKeyPem, 'MUTUAL_PKI_PEM_MALFORMED'],
  ];
  for (const [name, certificatePem, privateKeyPem, code, message] of cases) {
    throwsCode(
      () => loadAuthority({ certificatePem, privateKeyPem, clock, source: 'issuer.pem' }),
      code,
      name,
      message,
    );
  }

  const timeCases: Array<[string, number]> = [
    ['expired', issuer.notAfterMs + 1000],
    ['not yet valid', issuer.notBeforeMs - 1000],
  ];
  for (const [name, atMs] of timeCases) {
    throwsCode(
      () =>
        loadAuthority({
          certificatePem: issuer.certificatePem,
          privateKeyPem: issuerKeyPem,
          clock: fixedClock(atMs),
        }),
      'MUTUAL_PKI_ISSUER_INVALID',
      name,
    );
  }
});

test('loadAuthority keeps extra PEM blocks as the chain and refuses a foreign trust domain', () => {
  const loaded = loadAuthority({
    certificatePem: issuer.certificatePem + anchor.certificatePem,
    privateKeyPem: privateKeyToPem(issuer.keys.privateKey),
    clock,
  });
  assert.deepEqual(loaded.chainPem, [anchor.certificatePem]);
  assert.throws(
    () =>
      loadAuthority({
        certificatePem: issuer.certificatePem,
        privateKeyPem: privateKeyToPem(issuer.keys.privateKey),
        clock,
        trustDomain: 'other.example',
      }),
    (error: unknown) =>
      isMutualError(error, 'MUTUAL_PKI_ISSUER_INVALID') && /other\.example/.test(error.message),
  );
});

test('createIssuer refuses an anchor of another trust domain', async () => {
  await assert.rejects(createIssuer(anchor, { trustDomain: 'other.example', clock }), (error: unknown) =>
    isMutualError(error, 'MUTUAL_PKI_ISSUER_INVALID'),
  );
});
