// `mutual check` flags out of their range are usage errors before anything is read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runMutual } from './run-mutual.ts';

test('check --traffic-window 0s is a usage error (it judged all traffic since the sidecars started)', async () => {
  const zero = await runMutual(['check', '--traffic-window', '0s', '--state-dir', 'no-such-mesh-dir']);
  assert.equal(zero.code, 2, zero.stdout);
  assert.match(zero.stderr, /error\[MUTUAL_CLI_USAGE\]: --traffic-window "0s" is too short: give 1s to 24h/);
  const long = await runMutual(['check', '--traffic-window', '30d', '--state-dir', 'no-such-mesh-dir']);
  assert.equal(long.code, 2);
  assert.match(long.stderr, /--traffic-window "30d" is longer than the maximum of 24h/);
});
