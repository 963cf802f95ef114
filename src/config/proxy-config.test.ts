import assert from 'node:assert/strict';
import { test } from 'node:test';
import { throwsCode } from '../testing/expect-error.ts';
import { loadProxyConfig } from './proxy-config.ts';

const ID = 'spiffe://cluster.local/ns/demo/sa/emoji';
const files = { cert: '/c.pem', key: '/k.pem', bundle: '/b.pem' };

test('--upstream-full-handshake marks the upstream listening at that address, and only it', () => {
  const config = loadProxyConfig(
    {
      ...files,
      upstream: [`127.0.0.1:9001=${ID}@127.0.0.1:4143`, `127.0.0.1:9002=${ID}@127.0.0.1:4143`],
      upstreamFullHandshake: ['127.0.0.1:9002'],
    },
    {},
  );
  assert.deepEqual(
    config.upstreams.map((upstream) => [upstream.listen.port, upstream.fullHandshake]),
    [
      [9001, false],
      [9002, true],
    ],
  );
});

test('--upstream-full-handshake also comes from MUTUAL_PROXY_UPSTREAM_FULL_HANDSHAKE', () => {
  const config = loadProxyConfig(
    { ...files, upstream: [`127.0.0.1:9001=${ID}@127.0.0.1:4143`] },
    { MUTUAL_PROXY_UPSTREAM_FULL_HANDSHAKE: '127.0.0.1:9001' },
  );
  assert.equal(config.upstreams[0]?.fullHandshake, true);
});

test('--upstream-full-handshake naming no --upstream is refused with the fix', () => {
  throwsCode(
    () =>
      loadProxyConfig(
        {
          ...files,
          upstream: [`127.0.0.1:9001=${ID}@127.0.0.1:4143`],
          upstreamFullHandshake: ['127.0.0.1:9009'],
        },
        {},
      ),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'unknown upstream',
    /--upstream-full-handshake 127\.0\.0\.1:9009 names no --upstream/,
  );
});

test('--policy-url (or MUTUAL_PROXY_POLICY_URL) is an https origin; with --policy-dir it is refused', () => {
  const upstream = [`127.0.0.1:9001=${ID}@127.0.0.1:4143`];
  const fromEnv = loadProxyConfig(
    { ...files, upstream },
    { MUTUAL_PROXY_POLICY_URL: 'https://mutual-destination.mutual-system.svc:8086/' },
  );
  assert.equal(fromEnv.policyUrl, 'https://mutual-destination.mutual-system.svc:8086');
  throwsCode(
    () => loadProxyConfig({ ...files, upstream, policyUrl: 'http://127.0.0.1:8086' }, {}),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'plain http',
    /--policy-url must be https:\/\//,
  );
  throwsCode(
    () =>
      loadProxyConfig(
        { ...files, upstream, policyDir: '/policies' },
        { MUTUAL_PROXY_POLICY_URL: 'https://x:8086' },
      ),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'both sources',
    /--policy-dir and --policy-url both given/,
  );
});
