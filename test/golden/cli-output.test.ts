// Golden files for `mutual check`, `mutual edges` and `mutual identity`, as a table and as JSON:
// the real commands on a fixed mesh (test/golden/fixtures, canned counters, a clock fixed at
// 2030-01-01T00:00:00Z). `UPDATE_GOLDEN=1` rewrites the files in test/golden/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertGolden, lineDiff } from './golden.ts';
import { type GoldenMesh, startGoldenMesh } from './golden-mesh.ts';

let mesh: GoldenMesh;

before(async () => {
  mesh = await startGoldenMesh();
});

after(async () => {
  await mesh?.close();
});

test('check: table and JSON, judged on the last 60 s of traffic', async () => {
  await mesh.makeState('check');
  mesh.setRecent(true);
  const table = await mesh.run(['check', '--state-dir', 'check']);
  assert.equal(table.code, 1, table.stdout);
  await assertGolden('check.table.golden', mesh.scrub(table.stdout));
  await mesh.makeState('check-json');
  const json = await mesh.run(['check', '--state-dir', 'check-json', '-o', 'json']);
  assert.equal(json.code, 1);
  await assertGolden('check.json.golden', mesh.scrub(json.stdout));
});

test('check: plaintext that stopped before the window does not fail the traffic check', async () => {
  await mesh.makeState('quiet');
  mesh.setRecent(false);
  const quiet = await mesh.run(['check', '--state-dir', 'quiet', '--traffic-window', '60s']);
  mesh.setRecent(true);
  await assertGolden('check-quiet-traffic.table.golden', mesh.scrub(quiet.stdout));
  assert.match(
    quiet.stdout,
    /√ no plaintext traffic into meshed workloads: every connection into a workload/,
  );
});

test('check: no mesh running', async () => {
  const result = await mesh.run(['check', '--state-dir', 'nothing-here']);
  assert.equal(result.code, 1);
  await assertGolden('check-no-mesh.table.golden', mesh.scrub(result.stdout));
});

test('edges: table and JSON', async () => {
  await mesh.makeState('edges');
  mesh.setRecent(true);
  const table = await mesh.run(['edges', '--state-dir', 'edges']);
  assert.equal(table.code, 0, table.stdout);
  await assertGolden('edges.table.golden', mesh.scrub(table.stdout));
  const json = await mesh.run(['edges', '--state-dir', 'edges', '-o', 'json']);
  await assertGolden('edges.json.golden', mesh.scrub(json.stdout));
});

test('identity: table and JSON', async () => {
  await mesh.makeState('identity');
  const web = await mesh.run(['identity', 'web', '--state-dir', 'identity']);
  assert.equal(web.code, 0, web.stdout);
  await assertGolden('identity-web.table.golden', mesh.scrub(web.stdout));
  const cart = await mesh.run(['identity', 'show', 'cart', '--state-dir', 'identity', '-o', 'json']);
  assert.equal(cart.code, 0, cart.stdout);
  await assertGolden('identity-cart.json.golden', mesh.scrub(cart.stdout));
});

test('a difference fails with a line diff naming the golden file', async () => {
  if (process.env.UPDATE_GOLDEN === '1') return;
  const web = await mesh.run(['identity', 'web', '--state-dir', 'identity']);
  const changed = mesh.scrub(web.stdout).replace('verified', 'checked');
  await assert.rejects(assertGolden('identity-web.table.golden', changed), (error: Error) => {
    assert.match(error.message, /output differs from test\/golden\/identity-web\.table\.golden/);
    assert.match(error.message, /\n- +verified +chains/);
    assert.match(error.message, /\n\+ +checked +chains/);
    return true;
  });
  assert.equal(lineDiff('a\nb\nc\n', 'a\nB\nc\n'), '@@ line 1 @@\n  a\n- b\n+ B\n  c\n  ');
});
