import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sampledLog } from './sampled-log.ts';

test('the first of each kind is logged at once, the rest summed up once per interval, and a quiet interval makes the next one loud again', async () => {
  const lines: string[] = [];
  const log = sampledLog<'a' | 'b'>({
    log: (line) => lines.push(line),
    intervalMs: 100,
    summary: (counts, total) =>
      `${total} more: ${[...counts].map(([kind, count]) => `${count} ${kind}`).join(', ')}`,
  });
  try {
    for (let i = 0; i < 5; i++) log.report('a', () => `first a ${i}`);
    log.report('b', () => 'first b');
    log.report('b', () => 'second b');
    assert.deepEqual(lines, ['first a 0', 'first b']);
    await sleep(150);
    assert.deepEqual(lines, ['first a 0', 'first b', '5 more: 4 a, 1 b']);
    log.report('a', () => 'a during the next interval');
    await sleep(250);
    assert.deepEqual(lines.slice(3), ['1 more: 1 a']);
    log.report('a', () => 'a after a quiet interval');
    assert.equal(lines.at(-1), 'a after a quiet interval');
  } finally {
    log.close();
  }
});

test('kinds past maxKinds in an interval are not logged but counted as unlisted, so a client cannot write a line per name it sends', async () => {
  const lines: string[] = [];
  const log = sampledLog<string>({
    log: (line) => lines.push(line),
    intervalMs: 100,
    maxKinds: 3,
    summary: (counts, total, _seconds, unlisted) =>
      `${total} more: ${[...counts].map(([kind, count]) => `${count} ${kind}`).join(', ')}; ${unlisted} unlisted`,
  });
  try {
    for (let i = 0; i < 50; i++) log.report(`client-${i}`, () => `first of client-${i}`);
    log.report('client-0', () => 'again');
    assert.deepEqual(lines, ['first of client-0', 'first of client-1', 'first of client-2']);
    await sleep(150);
    assert.deepEqual(lines.slice(3), ['48 more: 1 client-0; 47 unlisted']);
    // The next interval logs new kinds again, up to the bound (client-0 is still quiet).
    log.report('client-60', () => 'first of client-60');
    assert.equal(lines.at(-1), 'first of client-60');
  } finally {
    log.close();
  }
});
