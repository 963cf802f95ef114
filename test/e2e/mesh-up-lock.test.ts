// One `mutual up` per state directory, from its first step. runtime.json is written only once the
// identity service is ready, so a second up started before then used to go ahead: two meshes in
// one state directory, the first one's processes forgotten by `mutual down`.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-up-lock-'));
  await writeFile(
    join(dir, 'mesh.yaml'),
    [
      'trustDomain: cluster.local',
      'services:',
      '  - name: shop',
      '    namespace: demo',
      `    command: [node, -e, "require('node:http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')"]`,
      '    ports: [8080]',
      '',
    ].join('\n'),
  );
});
after(async () => {
  for (const state of ['state-twice', 'state-down', 'state-killed'])
    await runMutual(['down', '--state-dir', join(dir, state)]);
  await rm(dir, { recursive: true, force: true });
});

/** `mutual up` held still (SIGSTOP) after making its CA: before runtime.json exists. */
async function upHeldWhileStarting(stateDir: string) {
  const up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir], '✓ CA');
  up.child.kill('SIGSTOP');
  assert.equal(up.child.exitCode, null, up.output());
  assert.equal(
    existsSync(join(stateDir, 'runtime.json')),
    false,
    'up was meant to be held before runtime.json',
  );
  return up;
}

test('a second up on a state directory whose up is still starting is refused, naming it', async () => {
  const stateDir = join(dir, 'state-twice');
  const first = await upHeldWhileStarting(stateDir);
  try {
    const second = await runMutual(['up', '-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir], {
      timeoutMs: 60_000,
    });
    assert.equal(second.code, 1, second.stdout + second.stderr);
    assert.ok(
      second.stderr.includes(
        `error[MUTUAL_MESH_ALREADY_RUNNING]: another \`mutual up\` (pid ${first.child.pid}) is starting or running a mesh from ${stateDir}; stop it with \`mutual down --state-dir ${stateDir}\` first`,
      ),
      second.stderr,
    );
    assert.doesNotMatch(second.stdout, /✓/, 'the second up must start nothing');
  } finally {
    first.child.kill('SIGCONT');
  }
  // The first goes on, and down stops it; no lock is left for the next up.
  await once(first.child.stdout!, 'data');
  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  await first.stop();
  assert.equal(existsSync(join(stateDir, 'up.lock')), false, 'the lock outlived its up');
  const again = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(again.output(), /The mesh is up/, again.output());
  await again.stop();
});

test('down while up is still starting (no runtime.json yet) stops it', async () => {
  const stateDir = join(dir, 'state-down');
  const up = await upHeldWhileStarting(stateDir);
  const exited = once(up.child, 'exit');
  try {
    const down = await runMutual(['down', '--state-dir', stateDir]);
    assert.equal(down.code, 0, down.stderr);
    assert.ok(down.stdout.includes(`Stopped the mesh (mutual up, pid ${up.child.pid}`), down.stdout);
  } finally {
    up.child.kill('SIGCONT');
  }
  await exited;
  assert.match(up.output(), /SIGTERM while starting: stopped everything started so far/, up.output());
  assert.equal(existsSync(join(stateDir, 'up.lock')), false);
  assert.equal(existsSync(join(stateDir, 'runtime.json')), false);
});

test('a lock left by an up killed with -9 does not stop the next up', async () => {
  const stateDir = join(dir, 'state-killed');
  const up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  up.child.kill('SIGKILL');
  await once(up.child, 'exit');
  assert.equal(existsSync(join(stateDir, 'up.lock')), true);
  const again = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  try {
    assert.match(again.output(), /The mesh is up/, again.output());
  } finally {
    await again.stop();
  }
});
