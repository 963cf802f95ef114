import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { isMutualError } from '../../errors.ts';
import { throwsCode } from '../../testing/expect-error.ts';
import { canUseNetns, createPodNetwork, hasCommand } from '../../testing/netns.ts';
import {
  ADDON_PATH,
  isSelfDestination,
  loadOrigdstAddon,
  readOriginalDestination,
} from './original-destination.ts';

// The redirect itself is proved in test/e2e/proxy-init.test.ts (needs root and a netns).

test('the addon throws an errno code for a descriptor that is not a socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mutual-origdst-'));
  const fd = openSync(join(dir, 'file'), 'w');
  try {
    const addon = loadOrigdstAddon();
    assert.ok(!isMutualError(addon), `addon not built (${String(addon)}): run npm run build:native`);
    assert.throws(() => addon.originalDst(fd, 4), { code: 'E88', message: /not a socket|non-socket/i });
    assert.throws(() => addon.originalDst(fd, 6), { code: 'E88' });
    // Family 0 asks the socket (getsockname), which a file is not.
    assert.throws(() => addon.originalDst(fd, 0), { code: 'E88' });
    assert.throws(() => addon.originalDst(fd, 5 as 4), { code: 'EINVAL', name: 'RangeError' });
    assert.throws(() => addon.originalDst(fd, '6' as unknown as 6), { code: 'EINVAL', name: 'TypeError' });
    throwsCode(
      () => readOriginalDestination(fd),
      'MUTUAL_PROXY_ORIGINAL_DST_FAILED',
      'file fd, family 0',
      /E88/,
    );
    throwsCode(() => readOriginalDestination(fd, 4), 'MUTUAL_PROXY_ORIGINAL_DST_FAILED', 'file fd', /E88/);
    throwsCode(
      () => readOriginalDestination(1_000_000, 4),
      'MUTUAL_PROXY_ORIGINAL_DST_FAILED',
      'closed fd',
      /E9/,
    );
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing addon is a coded error that says how to build it', () => {
  const result = loadOrigdstAddon(join(tmpdir(), 'no-such-dir', 'origdst.node'));
  assert.ok(isMutualError(result, 'MUTUAL_PROXY_ORIGINAL_DST_UNAVAILABLE'));
  assert.match(result.message, /npm run build:native/);
  assert.equal(ADDON_PATH, 'native/origdst/build/Release/origdst.node');
});

test('isSelfDestination: the listener itself (a loop) versus a real destination', () => {
  const cases: [string, { address: string; port: number }, { address: string; port: number }, boolean][] = [
    [
      'same address and port',
      { address: '127.0.0.1', port: 4140 },
      { address: '127.0.0.1', port: 4140 },
      true,
    ],
    ['other port', { address: '127.0.0.1', port: 8080 }, { address: '127.0.0.1', port: 4140 }, false],
    ['v4-mapped', { address: '::ffff:127.0.0.1', port: 4140 }, { address: '127.0.0.1', port: 4140 }, true],
    ['v4-mapped hex', { address: '::FFFF:7f00:1', port: 4140 }, { address: '127.0.0.1', port: 4140 }, true],
    [
      'any-address listener, v4-mapped loopback',
      { address: '::ffff:127.0.0.9', port: 4143 },
      { address: '::', port: 4143 },
      true,
    ],
    [
      'any-address listener, IPv4-translated is not loopback',
      { address: '::ffff:0:127.0.0.1', port: 4143 },
      { address: '::', port: 4143 },
      false,
    ],
    [
      'any-address listener, loopback',
      { address: '127.0.0.5', port: 4143 },
      { address: '0.0.0.0', port: 4143 },
      true,
    ],
    ['any-address listener, ::1', { address: '::1', port: 4143 }, { address: '::', port: 4143 }, true],
    [
      'any-address listener, remote',
      { address: '198.18.0.3', port: 4143 },
      { address: '0.0.0.0', port: 4143 },
      false,
    ],
    [
      'specific listener, other local',
      { address: '127.0.0.2', port: 4140 },
      { address: '127.0.0.1', port: 4140 },
      false,
    ],
  ];
  for (const [name, destination, listener, expected] of cases) {
    assert.equal(isSelfDestination(destination, listener), expected, name);
  }
});

// A real REDIRECT of each family inside a throwaway pod namespace: a process there connects to
// addresses nobody has, the nat OUTPUT rules send it to local listeners, and each listener asks the
// addon (through originalDestination) where the connection was going.
const netnsSkip =
  canUseNetns() ??
  (hasCommand('ip6tables') && hasCommand('iptables') ? undefined : 'iptables / ip6tables are not installed');

test('the addon reads IPv6 original destinations (ip6tables REDIRECT) and IPv4 ones on a dual-stack socket', {
  skip: netnsSkip,
}, async () => {
  const network = await createPodNetwork({ prefix: 'origdst' });
  try {
    const pod = await network.addPod('pod');
    const rules: [string, string[]][] = [
      [
        'ip6tables',
        ['-p', 'tcp', '-d', '2001:2::99', '--dport', '80', '-j', 'REDIRECT', '--to-ports', '4140'],
      ],
      [
        'ip6tables',
        ['-p', 'tcp', '-d', '2001:2::98', '--dport', '443', '-j', 'REDIRECT', '--to-ports', '4150'],
      ],
      [
        'iptables',
        ['-p', 'tcp', '-d', '198.18.200.9', '--dport', '81', '-j', 'REDIRECT', '--to-ports', '4150'],
      ],
    ];
    for (const [tool, rule] of rules) {
      const added = await pod.exec(tool, ['-t', 'nat', '-A', 'OUTPUT', ...rule]);
      assert.equal(added.code, 0, added.stderr);
    }
    const module = pathToFileURL(join(import.meta.dirname, 'original-destination.js')).href;
    const script = `
      import { createServer, connect } from 'node:net';
      import { originalDestination, readOriginalDestination } from ${JSON.stringify(module)};
      const seen = [];
      const listen = (host, port) => new Promise((resolve) => {
        const server = createServer((socket) => {
          seen.push({ listener: host, local: socket.localAddress, destination: originalDestination(socket),
            auto: readOriginalDestination(socket._handle.fd) });
          socket.end();
        });
        server.listen({ host, port, ipv6Only: host === '::1' }, resolve);
      });
      await listen('::1', 4140);  // where ip6tables REDIRECT in OUTPUT sends IPv6
      await listen('::', 4150);   // dual-stack: takes IPv4 (as ::ffff:127.0.0.1) and IPv6
      for (const [host, port] of [['2001:2::99', 80], ['2001:2::98', 443], ['198.18.200.9', 81]]) {
        await new Promise((resolve, reject) => connect(port, host).on('close', resolve).on('error', reject).resume());
      }
      console.log(JSON.stringify(seen));
      process.exit(0);`;
    const run = await pod.exec(process.execPath, ['--input-type=module', '-e', script], {
      timeoutMs: 15_000,
    });
    assert.equal(run.code, 0, run.stderr);
    const seen = JSON.parse(run.stdout) as {
      listener: string;
      local: string;
      destination: unknown;
      auto: unknown;
    }[];
    assert.deepEqual(
      seen.map(({ listener, local, destination }) => ({ listener, local, destination })),
      [
        { listener: '::1', local: '::1', destination: { address: '2001:2::99', port: 80, family: 'IPv6' } },
        { listener: '::', local: '::1', destination: { address: '2001:2::98', port: 443, family: 'IPv6' } },
        {
          listener: '::',
          local: '::ffff:127.0.0.1',
          destination: { address: '198.18.200.9', port: 81, family: 'IPv4' },
        },
      ],
    );
    // The addon's own choice of family (from the socket) agrees with the one the caller made.
    for (const entry of seen) assert.deepEqual(entry.auto, entry.destination);
  } finally {
    await network.close();
  }
});
