import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fixedClock } from '../clock.ts';
import { createRateLimiter } from './rate-limiter.ts';

test('a bucket allows its burst, then says how long to wait, and refills at its rate', () => {
  const clock = fixedClock(0);
  const limiter = createRateLimiter({ burst: 3, perSecond: 5 }, clock);
  assert.deepEqual(
    [1, 2, 3, 4].map(() => limiter.take('10.0.0.1')),
    [0, 0, 0, 1],
  );
  assert.equal(limiter.take('10.0.0.2'), 0, 'another key has its own bucket');
  clock.advance(200);
  assert.equal(limiter.take('10.0.0.1'), 0, 'one token back after 1/5 s');
  assert.equal(limiter.take('10.0.0.1'), 1);
});

test('a token given back is not counted (successful authentications cost nothing)', () => {
  const limiter = createRateLimiter({ burst: 2, perSecond: 1 }, fixedClock(0));
  for (let i = 0; i < 100; i++) {
    assert.equal(limiter.take('127.0.0.1'), 0);
    limiter.giveBack('127.0.0.1');
  }
  assert.equal(limiter.take('127.0.0.1'), 0);
  assert.equal(limiter.take('127.0.0.1'), 0);
  assert.ok(limiter.take('127.0.0.1') > 0);
});

test('a flood from many addresses keeps the table bounded; idle buckets are dropped', () => {
  const clock = fixedClock(0);
  const limiter = createRateLimiter({ burst: 20, perSecond: 5 }, clock, { maxKeys: 1000 });
  // 50,000 addresses, each failing its whole burst and more, a millisecond apart.
  for (let i = 0; i < 50_000; i++) {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    for (let j = 0; j < 25; j++) limiter.take(address);
    clock.advance(1);
    assert.ok(limiter.size() <= 1000, `${limiter.size()} buckets after ${i + 1} addresses`);
  }
  // The most recent addresses are still penalised: eviction takes the least recently used.
  assert.ok(limiter.take('10.0.195.79') > 0);
  // Once every bucket has had time to refill (20 / 5 = 4 s), the next request drops them all.
  clock.advance(4_000);
  assert.equal(limiter.take('192.0.2.1'), 0);
  assert.equal(limiter.size(), 1);
});
