import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalIp, staticDestinations } from './destinations.ts';

const ID = 'spiffe://cluster.local/ns/demo/sa/emoji';

test('IPv6 destinations match however the address is spelled; IPv4 is left as is', () => {
  assert.equal(canonicalIp('2001:DB8:0:0::5'), '2001:db8::5');
  assert.equal(canonicalIp('198.18.0.3'), '198.18.0.3');
  const table = staticDestinations([{ address: '2001:2:0::4', port: 8080, serverId: ID }]);
  assert.equal((table.resolve('2001:2::4', 8080) as { serverId: string } | undefined)?.serverId, ID);
  assert.equal(table.resolve('2001:2::4', 8081), undefined);
  assert.equal(table.resolve('2001:2::5', 8080), undefined);
});
