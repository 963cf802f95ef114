import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverNameForSpiffeId } from './server-name.ts';

test('an ns/sa SPIFFE ID becomes a DNS host name, as Linkerd names identities', () => {
  assert.equal(
    serverNameForSpiffeId('spiffe://cluster.local/ns/emojivoto/sa/web'),
    'web.emojivoto.serviceaccount.identity.cluster.local',
  );
  // Kubernetes ServiceAccount names may hold dots: still a valid host name.
  assert.equal(
    serverNameForSpiffeId('spiffe://example.org/ns/prod/sa/api.v2'),
    'api.v2.prod.serviceaccount.identity.example.org',
  );
});

test('IDs with no valid host name get none (the ClientHello then names no server)', () => {
  for (const id of [
    'spiffe://cluster.local/workload/web', // not the ns/sa shape
    'spiffe://my_domain/ns/a/sa/b', // underscore: no LDH label
    'spiffe://cluster.local/ns/a/sa/-b', // a label starting with a hyphen
    `spiffe://cluster.local/ns/a/sa/${'x'.repeat(64)}`, // a label over 63 characters
    `spiffe://${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.d/ns/${'e'.repeat(60)}/sa/f`, // over 253
    'spiffe://cluster.local/ns/a/sa/b/extra',
  ])
    assert.equal(serverNameForSpiffeId(id), undefined, id);
});
