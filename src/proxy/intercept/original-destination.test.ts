import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMutualError } from '../../errors.ts';
import { throwsCode } from '../../testing/expect-error.ts';
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
    assert.throws(() => addon.originalDst(fd, 5 as 4), { code: 'EINVAL', name: 'RangeError' });
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
