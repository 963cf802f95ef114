import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelayMs, renewalDelayMs } from './renewal.ts';

const HOUR = 3_600_000;

test('renewal happens at 70% of the lifetime, clamped to [10 s, 24 h]', () => {
  const cases: Array<[number, number, number, number]> = [
    // notBefore, notAfter, now, expected delay
    [0, 24 * HOUR, 0, 16.8 * HOUR],
    [0, 24 * HOUR, 10 * HOUR, 6.8 * HOUR],
    [0, 10_000, 0, 7_000], // short test lifetimes still renew at 70%
    [0, 365 * 24 * HOUR, 0, 24 * HOUR],
    [0, 24 * HOUR, 20 * HOUR, 10_000], // past the renewal point: soon, not at once
    [0, 24 * HOUR, 24 * HOUR - 4_000, 2_000], // nearly expired: within the time left
  ];
  for (const [notBefore, notAfter, now, expected] of cases) {
    assert.equal(
      Math.round(renewalDelayMs(notBefore, notAfter, now)),
      Math.round(expected),
      `${notBefore} ${notAfter} ${now}`,
    );
  }
});

test('backoff grows exponentially with jitter and is bounded', () => {
  assert.equal(
    backoffDelayMs(0, 1000, 30_000, () => 1),
    1000,
  );
  assert.equal(
    backoffDelayMs(3, 1000, 30_000, () => 1),
    8000,
  );
  assert.equal(
    backoffDelayMs(20, 1000, 30_000, () => 1),
    30_000,
  );
  assert.equal(
    backoffDelayMs(5, 1000, 30_000, () => 0),
    500,
  );
});
