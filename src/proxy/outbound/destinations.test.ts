import assert from 'node:assert/strict';
import { test } from 'node:test';
import { staticDestinations } from './destinations.ts';

const ID = 'spiffe://cluster.local/ns/demo/sa/emoji';

test('IPv6 destinations match however the address is spelled; IPv4 is left as is', () => {
  const table = staticDestinations([{ address: '2001:2:0::4', port: 8080, serverId: ID }]);
  assert.equal((table.resolve('2001:2::4', 8080) as { serverId: string } | undefined)?.serverId, ID);
  assert.equal(table.resolve('2001:2::4', 8081), undefined);
  assert.equal(table.resolve('2001:2::5', 8080), undefined);
});

test('an IPv4-mapped --destination is the IPv4 address the original destination reports', () => {
  // SO_ORIGINAL_DST gives an IPv4 connection as 198.18.0.5, whatever the flag said.
  for (const written of ['::ffff:198.18.0.5', '::FFFF:C612:5', '0:0:0:0:0:ffff:c612:5']) {
    const table = staticDestinations([{ address: written, port: 80, serverId: ID }]);
    assert.equal(
      (table.resolve('198.18.0.5', 80) as { serverId: string } | undefined)?.serverId,
      ID,
      written,
    );
    assert.equal((table.resolve('::ffff:198.18.0.5', 80) as { serverId: string } | undefined)?.serverId, ID);
  }
  const ipv4 = staticDestinations([{ address: '198.18.0.5', port: 80, serverId: ID }]);
  assert.equal((ipv4.resolve('::ffff:c612:5', 80) as { serverId: string } | undefined)?.serverId, ID);
  // IPv4-translated is an IPv6 address of its own.
  assert.equal(ipv4.resolve('::ffff:0:c612:5', 80), undefined);
});
