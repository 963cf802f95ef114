// `mutual up` with a mesh.yaml that cannot start: the error names the service and the cause, and
// nothing is left running. A command that does not exist used to read "exited (code -2)".
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isRunning, type MeshRuntime } from '../../src/mesh/index.ts';
import { runMutual, startMeshUp } from './run-mutual.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-up-failures-'));
});
after(async () => {
  for (const state of ['state', 'state-epipe', 'state-sigint', 'state-killed', 'state-stale'])
    await runMutual(['down', '--state-dir', join(dir, state)]);
  await rm(dir, { recursive: true, force: true });
});

test('an app command that does not exist: named before anything starts, and nothing left running', async () => {
  await writeFile(
    join(dir, 'mesh.yaml'),
    [
      'trustDomain: cluster.local',
      'services:',
      '  - name: shop',
      '    namespace: demo',
      '    command: [mutual-test-no-such-command, --serve]',
      '    ports: [8080]',
      '',
    ].join('\n'),
  );
  const up = await runMutual(['up', '-f', join(dir, 'mesh.yaml'), '--state-dir', join(dir, 'state')], {
    timeoutMs: 60_000,
  });
  assert.equal(up.code, 1, up.stderr);
  assert.match(
    up.stderr,
    /error\[MUTUAL_MESH_CONFIG_INVALID\]: .*mesh\.yaml: services\.shop\.command: no program mutual-test-no-such-command on PATH; is it installed\?/,
  );
  assert.doesNotMatch(up.stderr, /code -2/);
  assert.doesNotMatch(up.stdout, /✓ CA/, 'nothing may start for a program that is not there');
  const down = await runMutual(['down', '--state-dir', join(dir, 'state')]);
  assert.match(down.stdout, /nothing to stop/, down.stdout + down.stderr);
});

test('a string command (run by /bin/sh -c) whose program is missing or beside mesh.yaml: named before anything starts', async () => {
  // Both used to start: the app exited 127 "not found", the client after "The mesh is up", in a loop.
  await writeFile(join(dir, 'serve.sh'), '#!/bin/sh\nexec sleep 1000\n', { mode: 0o755 });
  await writeFile(
    join(dir, 'mesh-sh.yaml'),
    [
      'services:',
      '  - name: shop',
      '    command: mutual-test-no-such-command --port $PORT',
      '    ports: [8080]',
      '  - name: client',
      '    command: serve.sh --calls $SHOP_URL',
      '    upstreams: [shop]',
      '  - name: loop',
      '    command: while true; do sleep 1; done',
      '    upstreams: [shop]',
      '',
    ].join('\n'),
  );
  const state = join(dir, 'state-sh');
  const up = await runMutual(['up', '-f', join(dir, 'mesh-sh.yaml'), '--state-dir', state], {
    timeoutMs: 60_000,
  });
  assert.equal(up.code, 1, up.stderr);
  assert.match(up.stderr, /error\[MUTUAL_MESH_CONFIG_INVALID\]: .*mesh-sh\.yaml: 2 problems:/, up.stderr);
  assert.match(
    up.stderr,
    /services\.shop\.command \(run with \/bin\/sh -c\): no program mutual-test-no-such-command on PATH; is it installed\?/,
  );
  assert.match(
    up.stderr,
    /services\.client\.command \(run with \/bin\/sh -c\): no program serve\.sh on PATH; to run the one in \S+, write \.\/serve\.sh/,
  );
  assert.doesNotMatch(up.stderr, /services\.loop/, 'a loop the shell runs itself needs no program');
  assert.doesNotMatch(up.stdout, /✓ CA/, 'nothing may start for a program that is not there');
  await assert.rejects(stat(join(state, 'ca')), { code: 'ENOENT' });
});

test('a --state-dir where no directory can be made: an error naming it, at once', async () => {
  await writeFile(
    join(dir, 'mesh-state.yaml'),
    [
      'trustDomain: cluster.local',
      'services:',
      '  - name: shop',
      '    namespace: demo',
      '    command: [node]',
      '    ports: [8080]',
      '',
    ].join('\n'),
  );
  const up = await runMutual(
    ['up', '-f', join(dir, 'mesh-state.yaml'), '--state-dir', '/proc/mutual-no-such-dir/state'],
    {
      timeoutMs: 20_000,
    },
  );
  assert.equal(up.code, 1, up.stderr);
  assert.match(
    up.stderr,
    /error\[MUTUAL_IO_WRITE_FAILED\]: cannot create the mesh's state directory \/proc\/mutual-no-such-dir\/state \(ENOENT.*give --state-dir a directory/,
  );
});

test('a policyDir that does not exist, and a service with neither ports nor upstreams: one config error before anything starts', async () => {
  await writeFile(
    join(dir, 'mesh-bad.yaml'),
    [
      'trustDomain: cluster.local',
      'policyDir: no-such-policies',
      'services:',
      '  - name: shop',
      '    namespace: demo',
      '    command: [node, -e, "setInterval(() => {}, 1000)"]',
      '    ports: [8080]',
      '  - name: batch',
      '    namespace: demo',
      '    command: [node, -e, "setInterval(() => {}, 1000)"]',
      '',
    ].join('\n'),
  );
  const state = join(dir, 'state-bad');
  const up = await runMutual(['up', '-f', join(dir, 'mesh-bad.yaml'), '--state-dir', state], {
    timeoutMs: 60_000,
  });
  assert.equal(up.code, 1, up.stderr);
  assert.match(up.stderr, /error\[MUTUAL_MESH_CONFIG_INVALID\]: .*mesh-bad\.yaml: 2 problems:/);
  assert.match(up.stderr, /policyDir: .*no-such-policies does not exist/);
  assert.match(up.stderr, /services\.batch: declares neither ports nor upstreams/);
  assert.doesNotMatch(up.stdout, /✓ CA/, 'nothing may start before the config is known good');
  await assert.rejects(stat(join(state, 'ca')), { code: 'ENOENT' });
});

test('an app that exits: the error quotes its log from this up only, not lines an earlier up left', async () => {
  const state = join(dir, 'state-stale');
  await mkdir(join(state, 'logs'), { recursive: true });
  await writeFile(
    join(state, 'logs', 'shop.log'),
    'Error: listen EADDRINUSE: address already in use (an earlier up)\n',
  );
  await writeFile(
    join(dir, 'mesh-stale.yaml'),
    `services:\n  - name: shop\n    command: [node, -e, "console.error('shop: bad config'); process.exit(3)"]\n    ports: [8080]\n`,
  );
  const up = await runMutual(['up', '-f', join(dir, 'mesh-stale.yaml'), '--state-dir', state], {
    timeoutMs: 60_000,
  });
  assert.equal(up.code, 1, up.stderr);
  assert.match(up.stderr, /the app shop \(port 8080.*exited \(code 3\).*\| shop: bad config/s, up.stderr);
  assert.doesNotMatch(
    up.stderr + up.stdout,
    /an earlier up|could not bind a port|starting again on new ports/,
    up.stderr,
  );
});

test('a reader that stops reading (mutual up | head) does not kill up: it keeps supervising, then stops everything on SIGTERM', async () => {
  const stateDir = join(dir, 'state-epipe');
  await writeFile(
    join(dir, 'mesh-epipe.yaml'),
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
  const up = await startMeshUp(['-f', join(dir, 'mesh-epipe.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  up.child.stdout!.destroy();
  up.child.stderr!.destroy();
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  // up has something to say: the sidecar it supervises is gone.
  process.kill(-runtime.services[0]!.proxy.pid, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(up.child.exitCode, null, 'up is still running after its output was closed');
  await up.stop();
  for (const process of [runtime.identity, runtime.destination!, runtime.services[0]!.app])
    assert.equal(isRunning(process), false, `${process.argv.join(' ')} still runs`);
});

test('Ctrl-C while up is starting: no error and no hint to fix a cause, exit 130, nothing left running', async () => {
  const stateDir = join(dir, 'state-sigint');
  await writeFile(
    join(dir, 'mesh-sigint.yaml'),
    [
      'trustDomain: cluster.local',
      'services:',
      '  - name: shop',
      '    namespace: demo',
      // Never ready: up is still starting when the signal comes.
      '    command: [node, -e, "setInterval(() => {}, 1000)"]',
      '    ports: [8080]',
      '',
    ].join('\n'),
  );
  const up = await startMeshUp(
    ['-f', join(dir, 'mesh-sigint.yaml'), '--state-dir', stateDir, '--timeout', '60s'],
    '✓ destination',
  );
  // The sidecar is ready and the app started (recorded), waited for: up is in the middle of starting.
  let runtime: MeshRuntime | undefined;
  for (let waited = 0; !runtime?.services[0]?.app.pid; waited += 100) {
    assert.ok(waited < 30_000, `the app never started: ${up.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  }
  assert.equal(up.child.exitCode, null, up.output());
  const exited = once(up.child, 'exit');
  up.child.kill('SIGINT');
  const [code] = await exited;
  assert.equal(code, 130, up.output());
  assert.doesNotMatch(up.output(), /error\[|hint:|fix the cause/, up.output());
  assert.match(up.output(), /SIGINT while starting: stopped everything started so far/, up.output());
  for (const process of [
    runtime.identity,
    runtime.destination!,
    ...runtime.services.flatMap((s) => [s.app, s.proxy]),
  ])
    assert.equal(isRunning(process), false, `${process.argv.join(' ')} still runs`);
});

test('after a kill -9 of up, check says to run down and then the same up again (file, isolation, state dir)', async () => {
  const stateDir = join(dir, 'state-killed');
  await writeFile(
    join(dir, 'mesh-killed.yaml'),
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
  const up = await startMeshUp(['-f', join(dir, 'mesh-killed.yaml'), '--state-dir', stateDir]);
  assert.match(up.output(), /The mesh is up/, up.output());
  // Paths outside the directory up runs in are shown as they are, not as ../../tmp/...
  assert.ok(up.output().includes(`state in ${stateDir})`), up.output());
  assert.ok(up.output().includes(`created ${join(stateDir, 'ca')} (`), up.output());
  up.child.kill('SIGKILL');
  await once(up.child, 'exit');
  const check = await runMutual(['check', '--state-dir', stateDir]);
  assert.equal(check.code, 1, check.stdout);
  const expected = `run \`mutual down --state-dir ${stateDir}\`, then \`mutual up -f ${join(dir, 'mesh-killed.yaml')} --state-dir ${stateDir}\` to start it again`;
  assert.ok(check.stdout.includes(expected), check.stdout);
  assert.match(
    check.stdout,
    /fix: .*after a `mutual up` that was killed, `mutual down --state-dir \S+` first/,
    check.stdout,
  );
  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.match(down.stdout, /left behind by a stopped `mutual up`/, down.stdout + down.stderr);
});
