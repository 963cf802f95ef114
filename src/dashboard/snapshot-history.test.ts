// The dashboard's history over a window: one snapshot per slot, the newest, and one a window old.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addToHistory, HISTORY_SLOTS } from './snapshot-history.ts';

const WINDOW_MS = 60_000;

/** The history after a snapshot every `everyMs` for `forMs`. */
function refreshed(everyMs: number, forMs: number): number[] {
  const history: Array<{ atMs: number }> = [];
  for (let atMs = 0; atMs <= forMs; atMs += everyMs) addToHistory(history, { atMs }, WINDOW_MS);
  return history.map((snapshot) => snapshot.atMs);
}

test('every 2 s for five minutes: one snapshot per slot, not one per refresh (was 31)', () => {
  const kept = refreshed(2000, 300_000);
  assert.ok(kept.length <= HISTORY_SLOTS + 2, `${kept.length} kept: ${kept.join(', ')}`);
  assert.equal(kept.at(-1), 300_000, 'the newest is kept');
  const oldest = kept[0]!;
  assert.ok(300_000 - oldest >= WINDOW_MS, 'one at least a window old, for the checks');
  assert.ok(300_000 - oldest <= WINDOW_MS + WINDOW_MS / HISTORY_SLOTS, 'and not much older');
  for (const [at, atMs] of kept.slice(1, -1).entries())
    assert.ok(atMs - kept[at]! >= WINDOW_MS / HISTORY_SLOTS, `spaced by a slot: ${kept.join(', ')}`);
});

test('before a window has passed, the first snapshot stays the oldest', () => {
  const kept = refreshed(2000, 20_000);
  assert.equal(kept[0], 0);
  assert.equal(kept.at(-1), 20_000);
});

test('refreshes slower than a slot are all kept over the window', () => {
  assert.deepEqual(refreshed(10_000, 100_000), [40_000, 50_000, 60_000, 70_000, 80_000, 90_000, 100_000]);
});
