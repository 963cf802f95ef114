// A running mesh whose runtime.json gets truncated (a full disk, an editor, a copy cut short).
// `mutual check` and `mutual edges` say to run `mutual down`, which removed the file but stopped
// nothing ("must be stopped with Ctrl-C in its terminal"), though up.lock names the `mutual up`
// still running (an up started in the background has no terminal): the mesh kept running with
// nothing recording it. Now down stops that up, which stops every process it started.
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
  dir = await mkdtemp(join(tmpdir(), 'mutual-ops-runtime-corrupt-'));
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

test('down with a truncated runtime.json stops the mesh through the up that holds up.lock', async () => {
  const stateDir = join(dir, 'state');
  up = await startMeshUp(['-f', join(dir, 'mesh.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  const exited = once(up.child, 'exit');
  const runtimeFile = join(stateDir, 'runtime.json');
  const text = await readFile(runtimeFile, 'utf8');
  const runtime = JSON.parse(text) as {
    identity: Recorded;
    services: { app: Recorded; proxy: Recorded }[];
  };
  const recorded = [runtime.identity, runtime.services[0]!.app, runtime.services[0]!.proxy];
  await writeFile(runtimeFile, text.slice(0, 200));

  const check = await runMutual(['check', '--state-dir', stateDir], { timeoutMs: 60_000 });
  assert.match(
    check.stdout,
    /runtime\.json is not a runtime file.*`mutual down --state-dir [^`]+` removes it/,
  );

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(
    down.stdout,
    /Removed it, and stopped the `mutual up` holding .*up\.lock \(pid \d+\)/,
    down.stdout,
  );
  await exited;
  for (const process of recorded) assert.equal(isRunning(process), false, `pid ${process.pid} still runs`);
  assert.equal(existsSync(runtimeFile), false);
  assert.equal(existsSync(join(stateDir, 'up.lock')), false);
});
