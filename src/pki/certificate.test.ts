import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isMutualError } from '../errors.ts';
import { parseCertificate, parseCertificatesPem } from './certificate.ts';
import { formatIpAddress } from './general-names.ts';
import { encodePem } from './pem.ts';
import { intermediate, issue, root, svid } from './test-fixtures.ts';

const rootCa = await root('Parse Root');
const ca = await intermediate(rootCa, {
  name: 'Parse CA',
  pathLength: 0,
  permittedUriHosts: ['cluster.local'],
});
const leaf = await svid(ca, 'spiffe://cluster.local/ns/a/sa/b', { dnsNames: ['b.a.svc'] });

test('parseCertificate exposes the facts the verifier and inspect need', () => {
  const parsed = parseCertificate(leaf.der);
  assert.equal(parsed.subject, 'CN=workload');
  assert.equal(parsed.issuer, 'CN=Parse CA');
  assert.equal(parsed.version, 3);
  assert.equal(parsed.isCa, false);
  assert.deepEqual([...(parsed.keyUsage ?? [])], ['digitalSignature']);
  assert.deepEqual(parsed.extKeyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.deepEqual(parsed.uris, ['spiffe://cluster.local/ns/a/sa/b']);
  assert.deepEqual(parsed.dnsNames, ['b.a.svc']);
  assert.equal(parsed.publicKeyAlgorithm, 'EC P-256');
  assert.equal(parsed.fingerprintSha256, createHash('sha256').update(leaf.der).digest('hex'));
  assert.equal(parsed.notAfterMs, leaf.cert.notAfter.getTime());
  assert.equal(parsed.authorityKeyIdentifier?.keyIdentifier, parseCertificate(ca.der).subjectKeyIdentifier);
  assert.deepEqual(parsed.defects, []);
  assert.ok(parsed.native.verify(parseCertificate(ca.der).publicKey));
});

test('parseCertificate reads CA constraints', () => {
  const parsed = parseCertificate(ca.der);
  assert.equal(parsed.isCa, true);
  assert.equal(parsed.pathLength, 0);
  assert.equal(parsed.basicConstraintsCritical, true);
  assert.ok(parsed.keyUsage?.has('keyCertSign'));
  assert.deepEqual(
    parsed.nameConstraints?.permitted?.map((name) => [name.type, name.value]),
    [['uri', 'cluster.local']],
  );
  assert.equal(parsed.nameConstraints?.excluded, undefined);
  assert.equal(parseCertificate(rootCa.der).isSelfIssued, true);
});

test('parseCertificate caches by content', () => {
  assert.equal(parseCertificate(leaf.der), parseCertificate(new Uint8Array(leaf.der)));
});

test('parseCertificate keeps a bounded cache: renewed leaves are dropped, the issuer in use stays', async () => {
  // What a sidecar sees renewing for long: a new leaf of its own and of each peer every time.
  // 300 of them (a few hours of 15 s certificates, or a few weeks of 24 h ones with a handful of
  // peers) must not all stay decoded, at ~10 KB each.
  const first = await svid(ca, 'spiffe://cluster.local/ns/a/sa/renewed');
  const firstParsed = parseCertificate(first.der);
  const issuer = parseCertificate(ca.der);
  for (let i = 0; i < 300; i++) {
    parseCertificate((await svid(ca, 'spiffe://cluster.local/ns/a/sa/renewed')).der);
    assert.equal(parseCertificate(ca.der), issuer);
  }
  assert.notEqual(parseCertificate(first.der), firstParsed, 'the oldest leaf is no longer cached');
});

test('parseCertificate throws MUTUAL_PKI_CERT_MALFORMED on garbage', () => {
  const trailing = new Uint8Array([...leaf.der, 0]);
  for (const bytes of [
    new Uint8Array(),
    new Uint8Array([0x30, 0x82, 0xff]),
    leaf.der.subarray(0, 100),
    trailing,
  ]) {
    assert.throws(
      () => parseCertificate(bytes),
      (error) => isMutualError(error, 'MUTUAL_PKI_CERT_MALFORMED'),
    );
  }
});

test('parseCertificatesPem reads a bundle and refuses keys', () => {
  const bundle = encodePem('CERTIFICATE', leaf.der) + encodePem('CERTIFICATE', ca.der);
  assert.deepEqual(
    parseCertificatesPem(bundle, 'chain.pem').map((cert) => cert.subject),
    ['CN=workload', 'CN=Parse CA'],
  );
  assert.throws(
    () => parseCertificatesPem(encodePem('PRIVATE KEY', new Uint8Array([1])), 'key.pem'),
    (error) => isMutualError(error, 'MUTUAL_PKI_PEM_WRONG_TYPE'),
  );
  assert.throws(
    () => parseCertificatesPem(encodePem('CERTIFICATE', new Uint8Array([1, 2])), 'bad.pem'),
    (error) => isMutualError(error, 'MUTUAL_PKI_CERT_MALFORMED') && error.message.includes('bad.pem'),
  );
});

test('a leaf without extensions parses with undefined usages', async () => {
  const bare = parseCertificate((await issue({ name: 'bare', issuer: rootCa })).der);
  assert.equal(bare.keyUsage, undefined);
  assert.equal(bare.extKeyUsage, undefined);
  assert.equal(bare.isCa, false);
  assert.deepEqual(bare.subjectAltNames, []);
});

test('formatIpAddress prints RFC 5952 text', () => {
  assert.equal(formatIpAddress(new Uint8Array([192, 0, 2, 1])), '192.0.2.1');
  const loopback = new Uint8Array(16);
  loopback[15] = 1;
  assert.equal(formatIpAddress(loopback), '::1');
  const v6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
  assert.equal(formatIpAddress(v6), '2001:db8::1:0:0:1');
});
