import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixedClock } from '../clock.ts';
import { isMutualError } from '../errors.ts';
import {
  DAY,
  FIXTURE_NOW_MS,
  intermediate,
  issue,
  root,
  svid,
  tamperSignature,
  x509,
} from './test-fixtures.ts';
import {
  createPeerVerifier,
  MAX_SVID_BYTES,
  type PeerVerifierOptions,
  type SvidVerifyOptions,
} from './verify-peer.ts';

const ID = 'spiffe://cluster.local/ns/demo/sa/web';
const rootA = await root('Root A');
const rootB = await root('Root B');
const strangerRoot = await root('Stranger Root');
const issuing = await intermediate(rootA, {
  name: 'Issuing CA',
  pathLength: 0,
  permittedUriHosts: ['cluster.local'],
});
const leaf = await svid(issuing, ID);
const fromB = await svid(rootB, 'spiffe://cluster.local/ns/demo/sa/db');
const subCa = await intermediate(issuing, { name: 'Sub CA' });
const notCa = await issue({
  name: 'Not A CA',
  issuer: rootA,
  isCa: false,
  keyUsage: x509.KeyUsageFlags.digitalSignature,
});
const expiredCa = await intermediate(rootA, { name: 'Expired CA', notAfterMs: FIXTURE_NOW_MS - DAY / 2 });
const subdomainCa = await intermediate(rootA, {
  name: 'Subdomain CA',
  permittedUriHosts: ['.cluster.local'],
});
const unknownCritical = new x509.Extension('1.3.6.1.4.1.55738.666.1', true, new Uint8Array([5, 0]));

type Case = {
  name: string;
  chain: readonly Uint8Array[];
  options?: SvidVerifyOptions;
  verifier?: Partial<PeerVerifierOptions>;
  expect: 'ok' | string;
};

const cases: Case[] = [
  { name: 'valid SVID through the intermediate', chain: [leaf.der, issuing.der], expect: 'ok' },
  { name: 'second root of a rotating bundle', chain: [fromB.der], expect: 'ok' },
  { name: 'expected ID matches', chain: [leaf.der, issuing.der], options: { expectedId: ID }, expect: 'ok' },
  {
    name: 'expired leaf',
    chain: [(await svid(issuing, ID, { notAfterMs: FIXTURE_NOW_MS - 1000 })).der, issuing.der],
    expect: 'MUTUAL_PKI_CERT_EXPIRED',
  },
  {
    name: 'not-yet-valid leaf',
    chain: [(await svid(issuing, ID, { notBeforeMs: FIXTURE_NOW_MS + 60_000 })).der, issuing.der],
    expect: 'MUTUAL_PKI_CERT_NOT_YET_VALID',
  },
  {
    name: 'not-yet-valid leaf within the allowed skew',
    chain: [(await svid(issuing, ID, { notBeforeMs: FIXTURE_NOW_MS + 60_000 })).der, issuing.der],
    verifier: { skewMs: 120_000 },
    expect: 'ok',
  },
  {
    name: 'expired intermediate',
    chain: [(await svid(expiredCa, ID)).der, expiredCa.der],
    expect: 'MUTUAL_PKI_CERT_EXPIRED',
  },
  {
    name: 'root not in the bundle',
    chain: [(await svid(strangerRoot, ID)).der],
    expect: 'MUTUAL_PKI_CHAIN_UNTRUSTED',
  },
  { name: 'intermediate not sent', chain: [leaf.der], expect: 'MUTUAL_PKI_CHAIN_UNTRUSTED' },
  { name: 'CA certificate as leaf', chain: [issuing.der], expect: 'MUTUAL_PKI_CA_AS_LEAF' },
  {
    name: 'leaf with keyCertSign',
    chain: [
      (
        await svid(issuing, ID, {
          keyUsage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
        })
      ).der,
      issuing.der,
    ],
    expect: 'MUTUAL_PKI_CA_AS_LEAF',
  },
  {
    name: 'no URI SAN',
    chain: [(await svid(issuing, ID, { uris: [], dnsNames: ['web.demo'] })).der, issuing.der],
    expect: 'MUTUAL_PKI_NOT_SVID',
  },
  {
    name: 'two URI SANs',
    chain: [(await svid(issuing, ID, { uris: [ID, `${ID}2`] })).der, issuing.der],
    expect: 'MUTUAL_PKI_NOT_SVID',
  },
  {
    name: 'non-spiffe URI SAN',
    chain: [(await svid(rootA, ID, { uris: ['https://cluster.local/web'] })).der],
    expect: 'MUTUAL_PKI_NOT_SVID',
  },
  {
    name: 'SPIFFE ID without a path',
    chain: [(await svid(issuing, ID, { uris: ['spiffe://cluster.local'] })).der, issuing.der],
    expect: 'MUTUAL_PKI_NOT_SVID',
  },
  {
    name: 'clientAuth-only EKU used as a server',
    chain: [(await svid(issuing, ID, { extKeyUsage: ['1.3.6.1.5.5.7.3.2'] })).der, issuing.der],
    options: { usage: 'server' },
    expect: 'MUTUAL_PKI_KEY_USAGE_INVALID',
  },
  {
    name: 'clientAuth-only EKU used as a client',
    chain: [(await svid(issuing, ID, { extKeyUsage: ['1.3.6.1.5.5.7.3.2'] })).der, issuing.der],
    options: { usage: 'client' },
    expect: 'ok',
  },
  {
    name: 'missing keyUsage',
    chain: [(await svid(issuing, ID, { keyUsage: undefined })).der, issuing.der],
    expect: 'MUTUAL_PKI_KEY_USAGE_INVALID',
  },
  {
    name: 'intermediate without CA:true',
    chain: [(await svid(notCa, ID)).der, notCa.der],
    expect: 'MUTUAL_PKI_CHAIN_INVALID',
  },
  {
    name: 'pathLenConstraint exceeded',
    chain: [(await svid(subCa, ID)).der, subCa.der, issuing.der],
    expect: 'MUTUAL_PKI_CHAIN_INVALID',
  },
  {
    name: 'trust domain outside the name constraints',
    chain: [(await svid(issuing, 'spiffe://evil.example/ns/demo/sa/web')).der, issuing.der],
    expect: 'MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED',
  },
  {
    name: '".cluster.local" permits subdomains',
    chain: [(await svid(subdomainCa, 'spiffe://east.cluster.local/ns/a/sa/b')).der, subdomainCa.der],
    expect: 'ok',
  },
  {
    name: '".cluster.local" does not permit cluster.local itself',
    chain: [(await svid(subdomainCa, ID)).der, subdomainCa.der],
    expect: 'MUTUAL_PKI_NAME_CONSTRAINT_VIOLATED',
  },
  {
    name: 'tampered signature',
    chain: [tamperSignature(leaf.der), issuing.der],
    expect: 'MUTUAL_PKI_SIGNATURE_INVALID',
  },
  {
    name: 'garbage bytes',
    chain: [new Uint8Array([0x30, 0x03, 1, 2, 3])],
    expect: 'MUTUAL_PKI_CERT_MALFORMED',
  },
  { name: 'empty chain', chain: [], expect: 'MUTUAL_PKI_CERT_MALFORMED' },
  {
    name: 'unknown critical extension',
    chain: [(await svid(issuing, ID, { extraExtensions: [unknownCritical] })).der, issuing.der],
    expect: 'MUTUAL_PKI_CHAIN_INVALID',
  },
  {
    name: 'trust domain not accepted',
    chain: [leaf.der, issuing.der],
    verifier: { trustDomains: ['prod.example'] },
    expect: 'MUTUAL_PKI_TRUST_DOMAIN_REJECTED',
  },
  {
    name: 'another identity than expected',
    chain: [leaf.der, issuing.der],
    options: { expectedId: 'spiffe://cluster.local/ns/demo/sa/api' },
    expect: 'MUTUAL_PKI_SPIFFE_ID_MISMATCH',
  },
];

// About 27 and 38 KB of DNS SANs beside the SPIFFE ID.
const manyNames = (count: number) =>
  Array.from({ length: count }, (_, i) => `h${i}.padding-padding-padding.example`);
cases.push(
  {
    name: 'a 27 KB SVID (700 DNS SANs beside its ID)',
    chain: [(await svid(issuing, ID, { dnsNames: manyNames(700) })).der, issuing.der],
    expect: 'ok',
  },
  {
    name: 'a 40 KB leaf, over MAX_SVID_BYTES',
    chain: [(await svid(issuing, ID, { dnsNames: manyNames(1_000) })).der, issuing.der],
    expect: 'MUTUAL_PKI_NOT_SVID',
  },
);

for (const testCase of cases) {
  test(`verifySvid: ${testCase.name}`, () => {
    const verifier = createPeerVerifier({
      anchors: [rootA.der, rootB.der],
      clock: fixedClock(FIXTURE_NOW_MS),
      ...testCase.verifier,
    });
    const result = verifier.verifySvid(testCase.chain, testCase.options);
    assert.equal(result.ok ? 'ok' : result.code, testCase.expect, result.ok ? 'accepted' : result.message);
  });
}

test('verifySvidLeaf refuses a leaf over MAX_SVID_BYTES before decoding it', async () => {
  const verifier = createPeerVerifier({ anchors: [rootA.der], clock: fixedClock(FIXTURE_NOW_MS) });
  const small = await svid(issuing, ID, { dnsNames: manyNames(700) });
  const large = await svid(issuing, ID, { dnsNames: manyNames(1_000) });
  assert.ok(
    small.der.byteLength > 24_000 && small.der.byteLength < MAX_SVID_BYTES,
    `${small.der.byteLength}`,
  );
  assert.equal(verifier.verifySvidLeaf(small.der).ok, true);
  const result = verifier.verifySvidLeaf(large.der);
  assert.equal(result.ok ? 'ok' : result.code, 'MUTUAL_PKI_NOT_SVID');
  assert.match(
    result.ok ? '' : result.message,
    new RegExp(`is ${large.der.byteLength} bytes; an X.509-SVID may be at most 32768`),
  );
});

test('verifySvid returns the identity, the path to the anchor and when the verdict expires', () => {
  const verifier = createPeerVerifier({ anchors: [rootA.der], clock: fixedClock(FIXTURE_NOW_MS) });
  const result = verifier.verifySvid([leaf.der, issuing.der]);
  assert.ok(result.ok);
  assert.equal(result.spiffeId.uri, ID);
  assert.equal(result.spiffeId.trustDomain, 'cluster.local');
  assert.deepEqual(
    result.path.map((cert) => cert.subject),
    ['CN=workload', 'CN=Issuing CA', 'CN=Root A'],
  );
  assert.equal(result.validUntilMs, FIXTURE_NOW_MS + DAY);
});

test('a cached chain is still rejected once the clock passes notAfter, and accepted again before', () => {
  const clock = fixedClock(FIXTURE_NOW_MS);
  const verifier = createPeerVerifier({ anchors: [rootA.der], clock });
  assert.equal(verifier.verifySvid([leaf.der, issuing.der]).ok, true);
  clock.set(FIXTURE_NOW_MS + DAY + 1);
  const expired = verifier.verifySvid([leaf.der, issuing.der]);
  assert.equal(expired.ok ? 'ok' : expired.code, 'MUTUAL_PKI_CERT_EXPIRED');
  clock.set(FIXTURE_NOW_MS);
  assert.equal(verifier.verifySvid([leaf.der, issuing.der]).ok, true);
});

test('a cache hit still checks the expected identity', () => {
  const verifier = createPeerVerifier({ anchors: [rootA.der], clock: fixedClock(FIXTURE_NOW_MS) });
  assert.equal(verifier.verifySvid([leaf.der, issuing.der], { expectedId: ID }).ok, true);
  const other = verifier.verifySvid([leaf.der, issuing.der], { expectedId: `${ID}-other` });
  assert.equal(other.ok ? 'ok' : other.code, 'MUTUAL_PKI_SPIFFE_ID_MISMATCH');
});

test('a verifier for another bundle does not reuse verdicts', () => {
  const withA = createPeerVerifier({ anchors: [rootA.der], clock: fixedClock(FIXTURE_NOW_MS) });
  const withB = createPeerVerifier({ anchors: [rootB.der], clock: fixedClock(FIXTURE_NOW_MS) });
  assert.equal(withA.verifySvid([leaf.der, issuing.der]).ok, true);
  const result = withB.verifySvid([leaf.der, issuing.der]);
  assert.equal(result.ok ? 'ok' : result.code, 'MUTUAL_PKI_CHAIN_UNTRUSTED');
});

test('createPeerVerifier refuses an empty or unreadable bundle', () => {
  assert.throws(
    () => createPeerVerifier({ anchors: [] }),
    (error) => isMutualError(error, 'MUTUAL_PKI_BUNDLE_INVALID'),
  );
  assert.throws(
    () => createPeerVerifier({ anchors: [new Uint8Array([1, 2, 3])] }),
    (error) => isMutualError(error, 'MUTUAL_PKI_BUNDLE_INVALID'),
  );
});

test('verifyPath matches DNS names (single left-most wildcard) and IP addresses, never the CN', async () => {
  const web = await issue({
    name: 'api.example.com',
    issuer: rootA,
    extKeyUsage: ['1.3.6.1.5.5.7.3.1'],
    dnsNames: ['*.example.com', 'example.net'],
  });
  const verifier = createPeerVerifier({ anchors: [rootA.der], clock: fixedClock(FIXTURE_NOW_MS) });
  const check = (kind: 'DNS' | 'IP', value: string) => {
    const result = verifier.verifyPath([web.der], {
      peerName: { kind, value },
      requiredEku: ['1.3.6.1.5.5.7.3.1'],
    });
    return result.ok ? 'ok' : result.code;
  };
  assert.equal(check('DNS', 'www.example.com'), 'ok');
  assert.equal(check('DNS', 'EXAMPLE.net'), 'ok');
  assert.equal(check('DNS', 'a.b.example.com'), 'MUTUAL_PKI_PEER_NAME_MISMATCH');
  assert.equal(check('DNS', 'example.com'), 'MUTUAL_PKI_PEER_NAME_MISMATCH');
  assert.equal(check('IP', '127.0.0.1'), 'MUTUAL_PKI_PEER_NAME_MISMATCH');
});

test('an untrusted chain says which certificate is missing: the intermediate, or the root', () => {
  const verifier = createPeerVerifier({ anchors: [rootA.der], clock: fixedClock(FIXTURE_NOW_MS) });
  const alone = verifier.verifySvid([leaf.der]);
  assert.ok(!alone.ok && alone.code === 'MUTUAL_PKI_CHAIN_UNTRUSTED');
  assert.match(alone.message, /the leaf came alone, .* send the intermediate "[^"]*" after the leaf$/);
  const toB = createPeerVerifier({ anchors: [rootB.der], clock: fixedClock(FIXTURE_NOW_MS) });
  const noRoot = toB.verifySvid([leaf.der, issuing.der]);
  assert.ok(!noRoot.ok);
  assert.match(
    noRoot.message,
    /: it reaches certificate "[^"]+" .*whose issuer "[^"]*Root A[^"]*" is not a root of the trust bundle$/,
  );
  const stranger = verifier.verifySvid([leaf.der, fromB.der]);
  assert.ok(!stranger.ok);
  assert.match(
    stranger.message,
    /: neither the 1 certificate sent with it nor the roots of the trust bundle are its issuer$/,
  );
});
