// Guards the x509-limbo results: no case that passed in the committed results may fail now,
// and no case expected to FAIL may become accepted unless the committed file already says so.
// Refresh the committed file with `node dist/test/limbo/run-limbo.js --update` after a review.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readCommittedResults, runLimbo } from './run-limbo.ts';

const current = runLimbo();
const committed = new Map(readCommittedResults().map((result) => [result.id, result]));

test('every limbo case has a committed result', () => {
  const missing = current.filter((result) => !committed.has(result.id)).map((result) => result.id);
  assert.deepEqual(missing, [], 'new limbo cases: review them and run run-limbo.js --update');
});

test('no limbo case that passed before fails now', () => {
  const regressions = current
    .filter((result) => committed.get(result.id)?.pass === true && !result.pass)
    .map(
      (result) => `${result.id}: expected ${result.expected}, got ${result.actual} (${result.code ?? 'ok'})`,
    );
  assert.deepEqual(regressions, []);
});

test('no limbo case expected to FAIL is newly accepted', () => {
  const newlyAccepted = current
    .filter((result) => result.expected === 'FAILURE' && result.actual === 'SUCCESS')
    .filter((result) => committed.get(result.id)?.actual !== 'SUCCESS')
    .map((result) => result.id);
  assert.deepEqual(newlyAccepted, []);
});
