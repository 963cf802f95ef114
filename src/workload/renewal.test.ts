import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelayMs, certifyTimeoutMs, renewalDelayMs, retryDelayMs } from './renewal.ts';

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

test("a 429's Retry-After is waited for, with jitter, within the backoff's bounds", () => {
  // Without Retry-After: the backoff as before.
  assert.equal(
    retryDelayMs(0, 1000, 30_000, undefined, () => 1),
    1000,
  );
  // Retry-After longer than the backoff wins, with up to 20% jitter on top.
  assert.equal(
    retryDelayMs(0, 1000, 30_000, 5000, () => 0),
    5000,
  );
  assert.equal(
    retryDelayMs(0, 1000, 30_000, 5000, () => 1),
    6000,
  );
  // A longer backoff is kept; a Retry-After past the maximum is cut to it.
  assert.equal(
    retryDelayMs(4, 1000, 30_000, 1000, () => 1),
    16_000,
  );
  assert.equal(
    retryDelayMs(0, 1000, 30_000, 3_600_000, () => 0),
    30_000,
  );
});

test('a certify call may wait a third of the validity left, between 2 and 10 s', () => {
  const now = 1_000_000;
  assert.equal(certifyTimeoutMs(undefined, now), 10_000, 'no certificate yet');
  assert.equal(certifyTimeoutMs(now - 1, now), 10_000, 'expired: nothing left to save');
  assert.equal(certifyTimeoutMs(now + 7.2 * HOUR, now), 10_000, 'a 24 h certificate at 70%');
  assert.equal(certifyTimeoutMs(now + 9_000, now), 3_000, 'a 30 s certificate at 70%');
  assert.equal(certifyTimeoutMs(now + 3_000, now), 2_000, 'never under 2 s');
});
