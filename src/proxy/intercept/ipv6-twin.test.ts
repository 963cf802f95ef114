import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ipv6Twin, isNoIpv6Error } from './ipv6-twin.ts';

// That the twin really takes redirected IPv6 is proved in test/proxy/proxy-transparent.test.ts.

test('ipv6Twin: the IPv4 wildcard and loopback have IPv6 twins; other hosts none', () => {
  const cases: [string, string | undefined][] = [
    ['0.0.0.0', '::'],
    ['127.0.0.1', '::1'],
    ['::', undefined],
    ['::1', undefined],
    ['127.0.0.2', undefined],
    ['198.18.0.2', undefined],
    ['2001:2::2', undefined],
  ];
  for (const [host, twin] of cases) assert.equal(ipv6Twin(host), twin, host);
});

test('isNoIpv6Error: only "no IPv6 here" errors skip the twin; a taken port does not', () => {
  const error = (code: string) => Object.assign(new Error(code), { code });
  assert.equal(isNoIpv6Error(error('EAFNOSUPPORT')), true);
  assert.equal(isNoIpv6Error(error('EADDRNOTAVAIL')), true);
  assert.equal(isNoIpv6Error(error('EPROTONOSUPPORT')), true);
  assert.equal(isNoIpv6Error(error('EADDRINUSE')), false);
  assert.equal(isNoIpv6Error(error('EACCES')), false);
  assert.equal(isNoIpv6Error(undefined), false);
});
