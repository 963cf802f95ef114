// `mutual up` run in a terminal that goes away (an SSH session closed, a terminal window shut):
// the kernel sends it SIGHUP. up died of it alone, and its processes (each in a process group of
// its own) served on with nothing to restart them; `mutual check` then said "the `mutual up`
// process is gone". Now a hangup stops the mesh as Ctrl-C does, and nothing is left running.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isRunning } from '../../src/mesh/processes.ts';
import { type MeshUp, runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;
let up: MeshUp | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-ops-up-hangup-'));
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

interface Recorded {
  pid: number;
  startTicks: number;
}

test('SIGHUP (the terminal gone) stops the mesh as Ctrl-C does', async () => {
  const stateDir = join(dir, 'state');
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as {
    identity: Recorded;
    destination: Recorded;
    services: { app: Recorded; proxy: Recorded }[];
  };
  const recorded = [
    runtime.identity,
    runtime.destination,
    runtime.services[0]!.app,
    runtime.services[0]!.proxy,
  ];

  const exited = once(up.child, 'exit');
  up.child.kill('SIGHUP');
  const [code, signal] = await exited;
  assert.match(up.output(), /SIGHUP: stopping the mesh\nStopped every process of the mesh\./, up.output());
  assert.deepEqual([code, signal], [0, null]);
  for (const process of recorded) assert.equal(isRunning(process), false, `pid ${process.pid} still runs`);
  assert.equal(existsSync(join(stateDir, 'up.lock')), false);
});
