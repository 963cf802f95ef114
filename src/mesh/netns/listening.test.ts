import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isReachedFrom, listenAddresses } from './listening.ts';

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

test('isReachedFrom: what a connection to 127.0.0.1, or to the pod address, reaches', () => {
  const cases: [string, boolean, boolean][] = [
    // address, from 127.0.0.1 (the sidecar), from 198.18.7.2 (callers of a skipped port)
    ['0.0.0.0', true, true],
    ['*', true, true], // [::], dual-stack
    ['127.0.0.1', true, false],
    ['[::ffff:127.0.0.1]', true, false],
    ['127.0.0.1%lo', true, false],
    ['198.18.7.2', false, true],
    ['198.18.7.2%eth0', false, true],
    ['0.0.0.0%eth0', false, true], // bound to the pod's link only
    ['[::]', false, false], // IPv6 only
    ['[::1]', false, false],
    ['127.0.0.2', false, false],
  ];
  for (const [address, fromSidecar, fromCallers] of cases) {
    assert.equal(isReachedFrom(address, '127.0.0.1'), fromSidecar, `${address} from 127.0.0.1`);
    assert.equal(isReachedFrom(address, '198.18.7.2'), fromCallers, `${address} from the pod address`);
  }
});
