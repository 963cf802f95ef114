// `mutual identity SERVICE --state-dir DIR` (run in process, stdout and stderr together) for a service whose sidecar has exited: the message
// names the log command with DIR; the hint said '`mutual check`' and '`mutual logs SERVICE
// --proxy`' without it, commands that read the default state directory: another mesh, or none.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type GoldenMesh, startGoldenMesh } from '../golden/golden-mesh.ts';

let mesh: GoldenMesh;

before(async () => {
  mesh = await startGoldenMesh();
});

after(async () => {
  await mesh?.close();
});

test('identity of a service whose sidecar exited: every command it prints reads the state directory given', async () => {
  await mesh.makeState('dead-sidecar');
  const shown = await mesh.run(['identity', 'payments', '--state-dir', 'dead-sidecar']);
  assert.equal(shown.code, 1, shown.stdout);
  assert.match(
    shown.stdout,
    /error\[MUTUAL_MESH_ADMIN_UNREACHABLE\]: the sidecar of payments did not answer/,
  );
  assert.match(shown.stdout, /`mutual logs payments --proxy --state-dir dead-sidecar`/);
  for (const [, command] of shown.stdout.matchAll(/`(mutual [^`]*)`/g))
    assert.match(command!, /--state-dir dead-sidecar/, `${command} in ${shown.stdout}`);
});
