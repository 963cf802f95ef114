// What `mutual dashboard --allow-remote` prints: never http://0.0.0.0/ (nothing to browse to),
// but loopback and this machine's own addresses.
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { test } from 'node:test';
import { browsableUrls } from './dashboard-command.ts';

const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
  ({ address, family, internal, netmask: '', mac: '', cidr: null, scopeid: 0 }) as NetworkInterfaceInfo;
const interfaces = {
  lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
  eth0: [nic('198.18.0.10', 'IPv4'), nic('fd00::10', 'IPv6'), nic('fe80::1ff:fe23:4567:890a', 'IPv6')],
};

test('a wildcard IPv4 address: loopback first, then the machine IPv4 addresses', () => {
  assert.deepEqual(browsableUrls('http://0.0.0.0:9800/', interfaces), [
    'http://127.0.0.1:9800/',
    'http://198.18.0.10:9800/',
  ]);
});

test('a wildcard IPv6 address: [::1] first, then every address but link-local ones (a browser cannot take their zone)', () => {
  assert.deepEqual(browsableUrls('http://[::]:9800/', interfaces), [
    'http://[::1]:9800/',
    'http://198.18.0.10:9800/',
    'http://[fd00::10]:9800/',
  ]);
});

test('a concrete address is printed as it is', () => {
  assert.deepEqual(browsableUrls('http://127.0.0.1:9800/', interfaces), ['http://127.0.0.1:9800/']);
  assert.deepEqual(browsableUrls('http://198.18.0.10:9800/', interfaces), ['http://198.18.0.10:9800/']);
});
