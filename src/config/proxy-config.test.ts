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

test('--stream-idle-timeout and --idle-timeout: 5m and 1h by default, 0 turns them off, nonsense and more than 24d refused', () => {
  const upstream = [`127.0.0.1:9001=${ID}@127.0.0.1:4143`];
  const defaults = loadProxyConfig({ ...files, upstream }, {});
  assert.equal(defaults.streamIdleTimeoutMs, 5 * 60_000);
  assert.equal(defaults.idleTimeoutMs, 60 * 60_000);
  const off = loadProxyConfig({ ...files, upstream, streamIdleTimeout: '0', idleTimeout: '0s' }, {});
  assert.equal(off.streamIdleTimeoutMs, 0);
  assert.equal(off.idleTimeoutMs, 0);
  const fromEnv = loadProxyConfig(
    { ...files, upstream },
    { MUTUAL_PROXY_STREAM_IDLE_TIMEOUT: '90s', MUTUAL_PROXY_IDLE_TIMEOUT: '10m' },
  );
  assert.equal(fromEnv.streamIdleTimeoutMs, 90_000);
  assert.equal(fromEnv.idleTimeoutMs, 600_000);
  throwsCode(
    () => loadProxyConfig({ ...files, upstream, streamIdleTimeout: '300', idleTimeout: '30d' }, {}),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'bad durations',
    /--stream-idle-timeout "300" is not a duration[\s\S]*--idle-timeout "30d" is longer than the maximum of 24d/,
  );
});

test('--policy-port maps an --inbound app port to the port policies name (also MUTUAL_PROXY_POLICY_PORT); one naming no --inbound is refused', () => {
  const inbound = ['127.0.0.1:14001=23456', '127.0.0.1:14002=23457'];
  const config = loadProxyConfig({ ...files, inbound, policyPort: ['23456=8080'] }, {});
  assert.deepEqual([...config.policyPorts], [[23456, 8080]]);
  const fromEnv = loadProxyConfig(
    { ...files, inbound },
    { MUTUAL_PROXY_POLICY_PORT: '23456=8080,23457=9090' },
  );
  assert.deepEqual(
    [...fromEnv.policyPorts],
    [
      [23456, 8080],
      [23457, 9090],
    ],
  );
  throwsCode(
    () =>
      loadProxyConfig(
        { ...files, inbound, policyPort: ['8080=23456', '23456=8080', '23456=9090', '23457'] },
        {},
      ),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'bad --policy-port',
    /problems:\n {2}- --policy-port 8080=23456: no --inbound forwards to app port 8080; give the APP_PORT of an --inbound.*\n {2}- --policy-port 23456=9090: app port 23456 is already 8080.*\n {2}- --policy-port "23457": write APP_PORT=PORT/,
  );
});

test('--port-mode names the app port (or its --policy-port) of an --inbound; a listener port or any other is refused, not ignored', () => {
  const inbound = ['127.0.0.1:14001=8080'];
  assert.deepEqual(
    [...loadProxyConfig({ ...files, inbound, portMode: ['8080=STRICT'] }, {}).portModes],
    [[8080, 'STRICT']],
  );
  assert.deepEqual(
    [
      ...loadProxyConfig({ ...files, inbound, policyPort: ['8080=80'], portMode: ['80=STRICT'] }, {})
        .portModes,
    ],
    [[80, 'STRICT']],
  );
  // The transparent inbound sees any app port.
  loadProxyConfig({ ...files, inbound, inboundListen: '0.0.0.0:4143', portMode: ['9999=STRICT'] }, {});
  // Before, the listener port was taken and matched no connection: that listener stayed PERMISSIVE.
  throwsCode(
    () => loadProxyConfig({ ...files, inbound, portMode: ['14001=STRICT', '9999=DISABLE'] }, {}),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'a --port-mode no --inbound reaches',
    /problems:\n {2}- --port-mode 14001: no --inbound forwards to port 14001 \(it is where --inbound listens; that one forwards to app port 8080\).*\(here: 8080\)\n {2}- --port-mode 9999: no --inbound forwards to port 9999: /,
  );
  throwsCode(
    () => loadProxyConfig({ ...files, inbound, policyPort: ['8080=80'], portMode: ['8080=STRICT'] }, {}),
    'MUTUAL_PROXY_CONFIG_INVALID',
    'the app port where --policy-port renames it',
    /--port-mode 8080: .*\(here: 80\)/,
  );
});
