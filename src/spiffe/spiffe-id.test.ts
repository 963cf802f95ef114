import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMutualError } from '../errors.ts';
import {
  formatSpiffeId,
  meshIdentity,
  meshIdentityOf,
  parseMeshIdentity,
  parseSpiffeId,
  parseTrustDomain,
  tryParseSpiffeId,
} from './index.ts';

const valid: Array<[string, string, string]> = [
  ['spiffe://cluster.local/ns/web/sa/default', 'cluster.local', '/ns/web/sa/default'],
  ['spiffe://example.org', 'example.org', ''],
  ['spiffe://a_b-c.9/Path/With.Dots/and-dashes_0', 'a_b-c.9', '/Path/With.Dots/and-dashes_0'],
  ['spiffe://192.168.0.1/svc', '192.168.0.1', '/svc'],
  ['spiffe://td/...', 'td', '/...'],
  [`spiffe://${'a'.repeat(255)}/x`, 'a'.repeat(255), '/x'],
];

test('parseSpiffeId accepts IDs that follow the spec', () => {
  for (const [input, trustDomain, path] of valid) {
    const id = parseSpiffeId(input);
    assert.equal(id.trustDomain, trustDomain, input);
    assert.equal(id.path, path, input);
    assert.equal(id.uri, input);
  }
});

const invalid: Array<[string, string]> = [
  ['', 'empty'],
  ['http://cluster.local/ns/a/sa/b', 'scheme'],
  ['cluster.local/ns/a/sa/b', 'scheme'],
  ['spiffe:/cluster.local/a', 'scheme'],
  ['SPIFFE://cluster.local/a', 'scheme-lowercase'],
  ['spiffe://', 'trust-domain-missing'],
  ['spiffe:///ns/a', 'trust-domain-missing'],
  ['spiffe://Cluster.local/ns/a', 'trust-domain-lowercase'],
  ['spiffe://clu$ter.local/ns/a', 'trust-domain-chars'],
  ['spiffe://[::1]/ns/a', 'trust-domain-chars'],
  ['spiffe://user@cluster.local/ns/a', 'userinfo'],
  ['spiffe://cluster.local:8443/ns/a', 'port'],
  ['spiffe://cluster.local?x=1', 'query'],
  ['spiffe://cluster.local/ns/a?x=1', 'query'],
  ['spiffe://cluster.local/ns/a#frag', 'fragment'],
  ['spiffe://cluster.local/ns/%41', 'percent-encoding'],
  ['spiffe://cluster.local/', 'path-trailing-slash'],
  ['spiffe://cluster.local/ns/a/', 'path-trailing-slash'],
  ['spiffe://cluster.local//ns', 'path-empty-segment'],
  ['spiffe://cluster.local/ns/./a', 'path-dot-segment'],
  ['spiffe://cluster.local/ns/../a', 'path-dot-segment'],
  ['spiffe://cluster.local/ns/a b', 'path-chars'],
  ['spiffe://cluster.local/ns/ä', 'path-chars'],
  ['spiffe://cluster.local/ns/a*', 'path-chars'],
  [`spiffe://${'a'.repeat(256)}/x`, 'trust-domain-too-long'],
  [`spiffe://td/${'a'.repeat(2048)}`, 'too-long'],
];

test('parseSpiffeId rejects each broken rule and names it', () => {
  for (const [input, rule] of invalid) {
    assert.throws(
      () => parseSpiffeId(input),
      (error: unknown) => {
        assert.ok(isMutualError(error, 'MUTUAL_SPIFFE_ID_INVALID'), `${input}: ${String(error)}`);
        assert.equal(error.detail.rule, rule, input);
        assert.match(error.message, /invalid SPIFFE ID/);
        return true;
      },
    );
    assert.equal(tryParseSpiffeId(input), undefined);
  }
});

test('parseSpiffeId error messages are readable and bounded for huge input', () => {
  const huge = `spiffe://td/${'x'.repeat(100_000)}`;
  assert.throws(
    () => parseSpiffeId(huge),
    (error: unknown) => isMutualError(error) && error.message.length < 300,
  );
});

test('parseTrustDomain accepts a name or a path-less SPIFFE ID and rejects the rest', () => {
  assert.equal(parseTrustDomain('cluster.local'), 'cluster.local');
  assert.equal(parseTrustDomain('spiffe://cluster.local'), 'cluster.local');
  const cases: Array<[string, string]> = [
    ['', 'trust-domain-missing'],
    ['Cluster.Local', 'trust-domain-lowercase'],
    ['cluster local', 'trust-domain-chars'],
    ['cluster.local:443', 'port'],
    ['spiffe://cluster.local/ns/a', 'path'],
  ];
  for (const [input, rule] of cases) {
    assert.throws(
      () => parseTrustDomain(input),
      (error: unknown) =>
        isMutualError(error, 'MUTUAL_SPIFFE_TRUST_DOMAIN_INVALID') && error.detail.rule === rule,
      input,
    );
  }
});

test('mesh identities have the ns/<namespace>/sa/<service-account> form', () => {
  const mesh = meshIdentity('cluster.local', 'emojivoto', 'web');
  assert.equal(mesh.id.uri, 'spiffe://cluster.local/ns/emojivoto/sa/web');
  assert.equal(mesh.namespace, 'emojivoto');
  assert.equal(mesh.serviceAccount, 'web');
  assert.deepEqual(parseMeshIdentity(mesh.id.uri), mesh);
  assert.equal(meshIdentityOf(parseSpiffeId('spiffe://cluster.local/ns/a/sa/b/extra')), undefined);
  assert.equal(meshIdentityOf(parseSpiffeId('spiffe://cluster.local/sa/b/ns/a')), undefined);
  assert.throws(
    () => parseMeshIdentity('spiffe://cluster.local/workload/x'),
    (error: unknown) => isMutualError(error, 'MUTUAL_SPIFFE_NOT_MESH_ID'),
  );
  assert.throws(
    () => meshIdentity('cluster.local', 'a/b', 'web'),
    (error: unknown) => isMutualError(error, 'MUTUAL_SPIFFE_ID_INVALID'),
  );
});

test('formatSpiffeId validates what it builds', () => {
  assert.equal(formatSpiffeId('td', 'a', 'b').uri, 'spiffe://td/a/b');
  assert.throws(
    () => formatSpiffeId('td', '..'),
    (error: unknown) => isMutualError(error),
  );
});
