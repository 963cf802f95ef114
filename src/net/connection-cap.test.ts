import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressKey } from './connection-cap.ts';
import { defaultMaxConnections } from './descriptor-limit.ts';

test('connections are counted by address, IPv4-mapped as IPv4, and IPv6 by its /64', () => {
  const cases: Array<[string | undefined, string]> = [
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::1', '0:0:0:0::/64'],
    ['fd00::5', 'fd00:0:0:0::/64'],
    ['fd00::6', 'fd00:0:0:0::/64'],
    ['2001:db8:aa:bb:1:2:3:4', '2001:db8:aa:bb::/64'],
    ['2001:DB8:AA:BB:ffff::1', '2001:db8:aa:bb::/64'],
    ['2001:db8:aa:bc::1', '2001:db8:aa:bc::/64'],
    ['2001:db8::aa:bb:0:1', '2001:db8:0:0::/64'],
    [undefined, 'unknown'],
  ];
  for (const [address, key] of cases) assert.equal(addressKey(address), key, String(address));
});

test('the default cap on all connections is 3/4 of the file descriptor limit, between 1 and 16384', () => {
  const cases: Array<[number, number]> = [
    [1024, 768],
    [256, 192],
    [1, 1],
    [20_000, 15_000],
    [1_048_576, 16_384],
    [Number.POSITIVE_INFINITY, 16_384],
  ];
  for (const [limit, max] of cases) assert.equal(defaultMaxConnections(limit), max, String(limit));
  assert.ok(defaultMaxConnections() >= 1, 'read from this process');
});
