import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMutualError } from '../errors.ts';
import { formatDuration, parseDuration } from './index.ts';

test('parseDuration reads units and combinations', () => {
  const cases: Array<[string, number]> = [
    ['30s', 30_000],
    ['90m', 5_400_000],
    ['24h', 86_400_000],
    ['1h30m', 5_400_000],
    ['3650d', 3650 * 86_400_000],
    ['10y', 10 * 365 * 86_400_000],
    ['250ms', 250],
    ['1.5h', 5_400_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('parseDuration refuses ambiguous or malformed input', () => {
  for (const text of ['', '24', 'h', '24x', '1h 30m', '-5m', 'abc', '1h30']) {
    assert.throws(
      () => parseDuration(text, '--lifetime'),
      (error: unknown) => isMutualError(error, 'MUTUAL_CLI_USAGE') && error.message.includes('--lifetime'),
      text,
    );
  }
});

test('formatDuration shows the two largest units', () => {
  assert.equal(formatDuration(86_400_000 - 60_000), '23h 59m');
  assert.equal(formatDuration(364 * 86_400_000 + 23 * 3_600_000), '364d 23h');
  assert.equal(formatDuration(45_000), '45s');
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(86_400_000 + 20_000), '24h 0m');
  assert.equal(formatDuration(2 * 86_400_000), '2d 0h');
  assert.equal(formatDuration(-3_600_000), '-1h 0m');
});
