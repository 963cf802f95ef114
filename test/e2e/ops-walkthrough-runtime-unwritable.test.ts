// A mesh runs for weeks; its state directory stops taking writes (read-only remount, full disk)
// and a sidecar dies. `mutual up` starts it again but cannot record it in runtime.json, and said
// nothing: `mutual check` then reported "another process answers there, not the one `mutual up`
// started" for the sidecar up itself had just started. Now up says runtime.json could not be
// written and what to do, and says so again once a later restart writes it.
// The write is made to fail by a directory where up writes runtime.json's temporary file.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-ops-runtime-unwritable-'));
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
  await up?.stop();
  await runMutual(['down', '--state-dir', join(dir, 'state')]);
  await rm(dir, { recursive: true, force: true });
});

/** Resolves once up's output (stdout and stderr) matches `pattern`; no deadline of its own. */
function outputMatches(pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve) => {
    const look = () => {
      const match = pattern.exec(up!.output());
      if (!match) return;
      up!.child.stdout!.off('data', look);
      up!.child.stderr!.off('data', look);
      resolve(match);
    };
    up!.child.stdout!.on('data', look);
    up!.child.stderr!.on('data', look);
    look();
  });
}

const sidecarPid = async (runtimeFile: string) =>
  (JSON.parse(await readFile(runtimeFile, 'utf8')) as { services: { proxy: { pid: number } }[] }).services[0]!
    .proxy.pid;

test('up says when it cannot record a restarted sidecar in runtime.json, and when it can again', {
  timeout: 120_000,
}, async () => {
  const stateDir = join(dir, 'state');
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  const runtimeFile = join(stateDir, 'runtime.json');
  const blocker = `${runtimeFile}.${up.child.pid}.tmp`;
  await mkdir(blocker);

  const first = await sidecarPid(runtimeFile);
  process.kill(first, 'SIGKILL');
  await outputMatches(/cannot record the new process/);
  assert.match(
    up.output(),
    /! cannot record the new process in .*runtime\.json \(.*EISDIR.*\): `mutual check`, `logs` and the dashboard still look for the process before it\. Make .* writable again/,
    up.output(),
  );
  assert.equal(await sidecarPid(runtimeFile), first, 'runtime.json was written after all');

  // Writable again: the next restart is recorded, and up says so.
  await rm(blocker, { recursive: true });
  const restarted = Number((await outputMatches(/the sidecar of shop started again \(pid (\d+)/))[1]);
  process.kill(restarted, 'SIGKILL');
  await outputMatches(/records every process again/);
  const recorded = await sidecarPid(runtimeFile);
  assert.notEqual(recorded, first);
  assert.notEqual(recorded, restarted);
});
