// `mutual up --isolation netns` as a user runs it (root): two services, each a pod. The client app
// calls the server by name in plain HTTP and gets its answer through both sidecars (the client's
// learning that the address is meshed, and as whom, from the destination service through
// --destination-url), with its SPIFFE ID in x-mutual-client-id; a capture on the mesh bridge shows TLS records and never the
// request's marker; `mutual edges` shows the edge secured. The demo runs the same way. `mutual
// down` leaves no namespace, link, iptables rule, directory or state behind, also after a kill -9
// of `mutual up`.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isRunning, type MeshRuntime } from '../../src/mesh/index.ts';
import { netnsUnavailableReason } from '../../src/mesh/netns/index.ts';
import { hasCommand } from '../../src/testing/netns.ts';
import { repoRoot, runMutual, startMeshUp } from './run-mutual.ts';

const MARKER = 'NETNS-PLAINTEXT-MARKER-51c9';
const skip =
  netnsUnavailableReason() ??
  (hasCommand('tcpdump') ? undefined : 'tcpdump is not installed') ??
  (hasCommand('curl') ? undefined : 'curl is not installed');

const SERVER = `require('node:http').createServer((q, s) => s.end(JSON.stringify({ path: q.url, clientId: q.headers['x-mutual-client-id'] ?? null }))).listen(Number(process.env.PORT), '127.0.0.1')`;
// Calls the server by its name (resolved by the pod's /etc/hosts) and answers with what it got.
const CLIENT = `require('node:http').createServer(async (q, s) => { try { const r = await fetch('http://server:8080' + q.url); s.end(JSON.stringify({ status: r.status, answer: await r.json(), serverUrl: process.env.SERVER_URL, uid: process.getuid() })); } catch (e) { s.statusCode = 502; s.end(String(e.cause ?? e)); } }).listen(Number(process.env.PORT), '127.0.0.1')`;
const MESH = `trustDomain: cluster.local
mode: STRICT
services:
  - name: server
    namespace: netns-e2e
    command: [node, -e, ${JSON.stringify(SERVER)}]
    ports: [8080]
  - name: client
    namespace: netns-e2e
    command: [node, -e, ${JSON.stringify(CLIENT)}]
    ports: [8080]
    upstreams: [server]
`;

let dir: string;
const started: ChildProcess[] = [];

/** Starts `mutual up --isolation netns` and resolves once it says the mesh is up. */
async function up(stateDir: string, meshFile = join(dir, 'mesh.yaml'), services = 2) {
  const mesh = await startMeshUp(
    ['-f', meshFile, '--isolation', 'netns', '--state-dir', stateDir],
    'The mesh is up',
  );
  started.push(mesh.child);
  const output = mesh.output();
  assert.match(output, new RegExp(`The mesh is up: ${services} services`), output);
  const runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  return { child: mesh.child, runtime, output: mesh.output };
}

const sh = (command: string, args: string[]) => execFileSync(command, args, { encoding: 'utf8' });

/** Everything the mesh made, looked for by its id and subnet: none of it may be left. */
async function assertNothingLeft(runtime: MeshRuntime, stateDir: string) {
  const { id, subnet } = runtime.network!;
  const prefix = subnet.split('.').slice(0, 3).join('.');
  assert.doesNotMatch(sh('ip', ['netns', 'list']), new RegExp(`^${id}-`, 'm'));
  assert.doesNotMatch(sh('ip', ['-o', 'link', 'show']), new RegExp(id));
  assert.doesNotMatch(
    sh('ip', ['-4', '-o', 'addr', 'show']),
    new RegExp(`inet ${prefix.replaceAll('.', '\\.')}\\.`),
  );
  const iptables = sh('iptables-save', []);
  assert.doesNotMatch(iptables, new RegExp(`${id}|${prefix.replaceAll('.', '\\.')}\\.|MUTUAL_`));
  for (const path of [
    `/run/mutual/${id}`,
    join(stateDir, 'destinations.yaml'),
    ...runtime.services.map((service) => `/etc/netns/${service.pod!.netns}`),
    join(stateDir, 'runtime.json'),
    join(stateDir, 'network.json'),
  ]) {
    await assert.rejects(stat(path), { code: 'ENOENT' }, `${path} is left`);
  }
  for (const process of [
    runtime.identity,
    runtime.destination!,
    ...runtime.services.flatMap((s) => [s.app, s.proxy]),
  ])
    assert.equal(isRunning(process), false, `${process.argv.join(' ')} still runs`);
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-netns-'));
  await chmod(dir, 0o755); // the apps run as uids of their own with this as their working directory
  await writeFile(join(dir, 'mesh.yaml'), MESH);
});

after(async () => {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  if (dir) {
    for (const state of ['state', 'demo']) await runMutual(['down', '--state-dir', join(dir, state)]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('the client calls the server by name through both sidecars; the bridge carries only TLS; down removes everything', {
  skip,
}, async () => {
  const stateDir = join(dir, 'state');
  const mesh = await up(stateDir);
  const { runtime } = mesh;
  assert.equal(runtime.isolation, 'netns');
  const client = runtime.services.find((service) => service.name === 'client')!;
  const server = runtime.services.find((service) => service.name === 'server')!;
  assert.match(server.pod!.address, /^198\.1[89]\.\d+\.\d+$/);
  assert.match(client.pod!.netns, new RegExp(`^${runtime.network!.id}-client$`));
  // The proxies run as 2102 (proxy-init lets that uid out), the apps as another non-root uid.
  const uidOf = (pid: number) =>
    /^Uid:\s+(\d+)/m.exec(execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }))![1];
  assert.equal(uidOf(client.proxy.pid), '2102');
  // Each app has a uid of its own (no pod's app can signal or read another's).
  assert.ok(Number(uidOf(server.app.pid)) >= 2_300_000, uidOf(server.app.pid));
  assert.notEqual(uidOf(server.app.pid), uidOf(client.app.pid));
  // The transparent proxies ask the destination service, on the host's end of the mesh network;
  // no static --destination table in their argv.
  const destination = runtime.destination!;
  assert.equal(
    destination.apiUrl,
    `https://${runtime.network!.hostAddress}:${new URL(destination.apiUrl).port}`,
  );
  assert.match(mesh.output(), /✓ destination\s+destination service https:\/\/198\.1[89]\.[\d.]+:\d+ ready/);
  for (const service of runtime.services) {
    const argv = service.proxy.argv;
    assert.equal(argv[argv.indexOf('--destination-url') + 1], destination.apiUrl, argv.join(' '));
    assert.equal(argv.includes('--destination'), false, argv.join(' '));
  }

  // A capture on the mesh bridge, where every pod's traffic passes.
  const pcap = join(dir, 'bridge.pcap');
  const capture = spawn('ip', [
    ...['netns', 'exec', runtime.network!.bridgeNetns],
    ...['tcpdump', '-Z', 'root', '--immediate-mode', '-i', 'br0', '-U', '-n', '-w', pcap, 'tcp'],
  ]);
  started.push(capture);
  let captureLog = '';
  await new Promise<void>((resolve) =>
    capture.stderr!.on('data', (chunk) => {
      captureLog += chunk;
      if (captureLog.includes('listening')) resolve();
    }),
  );

  const call = sh('ip', [
    'netns',
    'exec',
    client.pod!.netns,
    'curl',
    '-sS',
    '-m',
    '10',
    `http://127.0.0.1:8080/${MARKER}`,
  ]);
  assert.deepEqual(JSON.parse(call), {
    status: 200,
    answer: { path: `/${MARKER}`, clientId: 'spiffe://cluster.local/ns/netns-e2e/sa/client' },
    serverUrl: 'http://server:8080',
    uid: Number(uidOf(client.app.pid)),
  });
  // The names a Kubernetes pod would call it by resolve too (the destination table lists the
  // cluster form), and the call is as meshed as by the short name.
  for (const name of ['server.netns-e2e', 'server.netns-e2e.svc', 'server.netns-e2e.svc.cluster.local']) {
    const byName = sh('ip', [
      'netns',
      'exec',
      client.pod!.netns,
      'curl',
      '-sS',
      '-m',
      '10',
      `http://${name}:8080/x`,
    ]);
    assert.deepEqual(JSON.parse(byName), {
      path: '/x',
      clientId: 'spiffe://cluster.local/ns/netns-e2e/sa/client',
    });
  }

  await new Promise((resolve) => setTimeout(resolve, 300));
  capture.kill('SIGINT');
  await once(capture, 'exit');
  const wire = await readFile(pcap);
  assert.ok(wire.length > 200, `nothing was captured (${wire.length} bytes): ${captureLog}`);
  assert.equal(wire.includes(Buffer.from(MARKER)), false, 'the request crossed the bridge in plain text');
  assert.ok(wire.includes(Buffer.from([0x17, 0x03, 0x03])), 'no TLS application-data record on the bridge');
  // The client's sidecar learnt that server:8080 is meshed from the destination service.
  const metrics = await (await fetch(`${client.adminUrl}/metrics`)).text();
  assert.match(metrics, /mutual_outbound_destination_lookups_total\{result="answered"\} [1-9]/, metrics);

  // The host reaches every admin endpoint: edges (and check, identity, dashboard) work as in loopback.
  const edges = await runMutual(['edges', '-o', 'json', '--state-dir', stateDir]);
  assert.equal(edges.code, 0, edges.stderr);
  const edge = JSON.parse(edges.stdout).edges.find(
    (candidate: Record<string, unknown>) =>
      candidate.source === 'client' && candidate.destination === 'server',
  );
  assert.ok(edge, edges.stdout);
  assert.equal(edge.isSecured, true);
  assert.equal(edge.clientId, 'spiffe://cluster.local/ns/netns-e2e/sa/client');
  assert.equal(edge.serverId, 'spiffe://cluster.local/ns/netns-e2e/sa/server');

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
  assert.match(mesh.output(), /Stopped every process of the mesh and removed its network/);
  await assertNothingLeft(runtime, stateDir);
});

test('the demo runs in netns mode (web answers through emoji and voting, check is green); after a kill -9 of up, down removes what it left', {
  skip,
}, async () => {
  const stateDir = join(dir, 'demo');
  const mesh = await up(stateDir, join(repoRoot(), 'examples', 'demo', 'mesh.yaml'), 4);
  const web = mesh.runtime.services.find((service) => service.name === 'web')!;
  const vote = JSON.parse(
    sh('ip', [
      'netns',
      'exec',
      web.pod!.netns,
      'curl',
      '-sS',
      '-m',
      '10',
      'http://127.0.0.1:8080/api/vote?shortcode=:joy:',
    ]),
  );
  assert.equal(vote.shortcode, ':joy:');
  assert.ok(vote.votes >= 1);
  const check = await runMutual(['check', '--state-dir', stateDir]);
  assert.equal(check.code, 0, check.stdout + check.stderr);

  // A crash: nothing cleans up after a kill -9 of `mutual up`; the pods and processes stay.
  mesh.child.kill('SIGKILL');
  await once(mesh.child, 'exit');
  assert.match(sh('ip', ['netns', 'list']), new RegExp(`^${web.pod!.netns}`, 'm'));
  assert.equal(isRunning(web.proxy), true);
  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /processes were left behind/);
  assert.match(
    down.stdout,
    /Removed the network it left: 5 network namespaces, [01] host links?, 5 directories/,
  );
  await assertNothingLeft(mesh.runtime, stateDir);
});

test('without root, or without ip and iptables, up refuses with a coded error that points to loopback', {
  skip: process.platform === 'linux' ? undefined : 'network namespaces are Linux only',
}, async () => {
  const work = await mkdtemp(join(tmpdir(), 'mutual-mesh-netns-refused-'));
  try {
    await writeFile(join(work, 'mesh.yaml'), MESH);
    await chmod(work, 0o755);
    await chmod(join(work, 'mesh.yaml'), 0o644);
    const args = [
      'up',
      '-f',
      join(work, 'mesh.yaml'),
      '--isolation',
      'netns',
      '--state-dir',
      join(work, 'state'),
    ];
    const bin = join(repoRoot(), 'bin', 'mutual.js');
    const run = (argv: string[], env: NodeJS.ProcessEnv) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (chunk) => {
          stderr += chunk;
        });
        child.on('close', (code) => resolve({ code, stderr }));
      });
    const asRoot = process.getuid?.() === 0;
    // Not root: as nobody when this runs as root, else as whoever runs it.
    const notRoot = await run(
      [
        ...(asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : []),
        process.execPath,
        bin,
        ...args,
      ],
      { ...process.env, NO_COLOR: '1' },
    );
    assert.equal(notRoot.code, 1, notRoot.stderr);
    assert.match(notRoot.stderr, /MUTUAL_MESH_NETNS_UNAVAILABLE/);
    assert.match(notRoot.stderr, /network namespaces need root/);
    assert.match(notRoot.stderr, /--isolation loopback/);
    await assert.rejects(stat(join(work, 'state')), { code: 'ENOENT' }, 'nothing is made before the check');
    if (asRoot) {
      // Root, but no ip / iptables / setpriv on PATH.
      const noTools = await run([process.execPath, bin, ...args], {
        PATH: join(work, 'empty'),
        NO_COLOR: '1',
      });
      assert.equal(noTools.code, 1, noTools.stderr);
      assert.match(noTools.stderr, /MUTUAL_MESH_NETNS_UNAVAILABLE/);
      assert.match(noTools.stderr, /the `ip` command \(iproute2\), iptables-save \(iptables\)/);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
