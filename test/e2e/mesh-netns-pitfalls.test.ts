// `mutual up --isolation netns` with mesh files that work in loopback mode and met a pod's limits:
// a service called `net` (the bridge's namespace was `<id>-net`, as its pod's), an app that logs
// to /dev/stdout as nginx and container images do (its log was root's, 0600, and the app runs as
// uid 2103), and a service declaring a port its sidecar holds in the pod (4143, 4140, 4191: the
// app failed to bind and the sidecar's socket passed for the app's, so up said the mesh was up),
// or named mutual-host or localhost (the pods' /etc/hosts sent callers to the host or to themselves).
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isRunning, type MeshRuntime } from '../../src/mesh/index.ts';
import { meshNetworkId, netnsUnavailableReason } from '../../src/mesh/netns/index.ts';
import { hasCommand } from '../../src/testing/netns.ts';
import { runMutual, startMeshUp } from './run-mutual.ts';

const skip = netnsUnavailableReason() ?? (hasCommand('curl') ? undefined : 'curl is not installed');

// Appends to /dev/stdout and /dev/stderr by opening them again (as nginx's access_log does), then serves.
const NET_APP = `const fs = require('node:fs'); fs.appendFileSync('/dev/stdout', 'reopened-stdout-line\\n'); fs.appendFileSync('/dev/stderr', 'reopened-stderr-line\\n'); require('node:http').createServer((q, s) => s.end('net answers ' + (q.headers['x-mutual-client-id'] ?? 'nobody'))).listen(8080)`;
const CALLER = `require('node:http').createServer(async (q, s) => { try { const r = await fetch('http://net:8080/'); s.end(await r.text()); } catch (e) { s.statusCode = 502; s.end(String(e.cause ?? e)); } }).listen(8080, '127.0.0.1')`;

let dir: string;
const started: ChildProcess[] = [];
const sh = (command: string, args: string[]) => execFileSync(command, args, { encoding: 'utf8' });

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-netns-pitfalls-'));
  await chmod(dir, 0o755); // the apps run as uid 2103 with this as their working directory
});

after(async () => {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  if (dir) {
    for (const state of ['net', 'ports']) await runMutual(['down', '--state-dir', join(dir, state)]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('a service called net gets its pod, and an app may open /dev/stdout and /dev/stderr again', {
  skip,
}, async () => {
  const meshFile = join(dir, 'net.yaml');
  await writeFile(
    meshFile,
    `services:
  - name: net
    namespace: pitfalls
    command: [node, -e, ${JSON.stringify(NET_APP)}]
    ports: [8080]
  - name: caller
    namespace: pitfalls
    command: [node, -e, ${JSON.stringify(CALLER)}]
    ports: [8080]
    upstreams: [net]
`,
  );
  const stateDir = join(dir, 'net');
  const mesh = await startMeshUp(
    ['-f', meshFile, '--isolation', 'netns', '--state-dir', stateDir, '--timeout', '20s'],
    'The mesh is up',
  );
  started.push(mesh.child);
  assert.match(mesh.output(), /The mesh is up: 2 services/, mesh.output());
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  const net = runtime.services.find((service) => service.name === 'net')!;
  const caller = runtime.services.find((service) => service.name === 'caller')!;
  assert.notEqual(net.pod!.netns, runtime.network!.bridgeNetns);
  const log = await readFile(net.app.log, 'utf8');
  assert.match(log, /reopened-stdout-line/);
  assert.match(log, /reopened-stderr-line/);
  const answer = sh('ip', [
    'netns',
    'exec',
    caller.pod!.netns,
    'curl',
    '-sS',
    '-m',
    '10',
    'http://127.0.0.1:8080/',
  ]);
  assert.equal(answer, 'net answers spiffe://cluster.local/ns/pitfalls/sa/caller');

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
  assert.doesNotMatch(sh('ip', ['netns', 'list']), new RegExp(`^${runtime.network!.id}-`, 'm'));
  for (const process of runtime.services.flatMap((service) => [service.app, service.proxy]))
    assert.equal(isRunning(process), false, `${process.argv.join(' ')} still runs`);
});

test('a port the sidecar holds in every pod, or a name every pod resolves elsewhere, is refused before anything starts', {
  skip,
}, async () => {
  const meshFile = join(dir, 'ports.yaml');
  await writeFile(
    meshFile,
    `services:
  - name: inbound-clash
    command: [node, -e, "require('node:http').createServer().listen(4143)"]
    ports: [4143]
  - name: admin-clash
    command: [node, -e, "require('node:http').createServer().listen(4191)"]
    ports: [8080, { port: 4191, protocol: tcp }]
  - name: mutual-host
    command: [node, -e, "require('node:http').createServer().listen(8080)"]
    ports: [8080]
  - name: localhost
    command: [node, -e, "require('node:http').createServer().listen(8081)"]
    ports: [8081]
`,
  );
  const stateDir = join(dir, 'ports');
  const result = await runMutual(['up', '-f', meshFile, '--isolation', 'netns', '--state-dir', stateDir]);
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stderr, /MUTUAL_MESH_CONFIG_INVALID/);
  assert.match(result.stderr, /services\.inbound-clash\.ports: port 4143 is the sidecar's inbound/);
  assert.match(result.stderr, /services\.admin-clash\.ports: port 4191 is the sidecar's admin/);
  // /etc/hosts names the host mutual-host and 127.0.0.1 localhost first: callers got there.
  assert.match(result.stderr, /services\.mutual-host\.name: "mutual-host" names the host/);
  assert.match(result.stderr, /services\.localhost\.name: "localhost" names the loopback address/);
  assert.doesNotMatch(result.stdout, /The mesh is up/);
  assert.doesNotMatch(sh('ip', ['netns', 'list']), new RegExp(`^${meshNetworkId(stateDir)}-`, 'm'));
  await assert.rejects(stat(join(stateDir, 'network.json')), { code: 'ENOENT' });
});
