import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isReachedFromLoopback, listenAddresses } from './listening.ts';

test('listenAddresses reads the local addresses of one port from ss -H -l -t -n', () => {
  const ss = [
    'LISTEN 0      511          0.0.0.0:4143      0.0.0.0:*',
    'LISTEN 0      5      198.18.7.2:8080    0.0.0.0:*',
    'LISTEN 0      5             [::]:8080       [::]:*',
    'LISTEN 0      511              *:8081          *:*',
    'LISTEN 0      511   127.0.0.1%lo:8082    0.0.0.0:*',
    '',
  ].join('\n');
  assert.deepEqual(listenAddresses(ss, 8080), ['198.18.7.2', '[::]']);
  assert.deepEqual(listenAddresses(ss, 8081), ['*']);
  assert.deepEqual(listenAddresses(ss, 8082), ['127.0.0.1%lo']);
  assert.deepEqual(listenAddresses(ss, 9999), []);
});

test('isReachedFromLoopback: what a connection to 127.0.0.1 reaches', () => {
  const cases: [string, boolean][] = [
    ['0.0.0.0', true],
    ['127.0.0.1', true],
    ['*', true], // [::], dual-stack
    ['[::ffff:127.0.0.1]', true],
    ['127.0.0.1%lo', true],
    ['0.0.0.0%eth0', false], // bound to another device
    ['[::]', false], // IPv6 only
    ['[::1]', false],
    ['127.0.0.2', false],
    ['198.18.7.2', false],
  ];
  for (const [address, expected] of cases) assert.equal(isReachedFromLoopback(address), expected, address);
});
