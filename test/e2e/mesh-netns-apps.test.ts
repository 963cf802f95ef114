// `mutual up --isolation netns` with apps as users write them rather than as the demo does:
// a server that listens with Node's default (`listen(8080)`: [::], dual-stack), which every other
// pod reached in plain text over IPv6 link-local, past both sidecars (the pods' iptables rules are
// IPv4 ones); and apps listening where their sidecar (127.0.0.1) cannot reach them, on the pod's
// address or on an IPv6-only [::] (nginx's `listen [::]:8080`), which `up` called ready, every
// call then failing with 502 ECONNREFUSED (a skipped inbound port is judged from the pod's
// address instead, where its callers come in); and a web server on port 80, which the app (not root)
// could not bind, where in a Kubernetes pod it can; and an app that writes to its HOME (`go run`'s
// build cache), which was root's /root, closed to the app's uid. A call to an address outside the
// mesh passes through in plain text; when that address refuses, the app saw a clean close (an
// empty answer) and nothing counted the failure. A server that puts itself in the background
// (nginx's default) was only 'exited (code 0)'. A project in a home directory closed to others
// (0750, Ubuntu's default) failed in the app with 'Permission denied', though it runs in loopback mode.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { netnsUnavailableReason } from '../../src/mesh/netns/index.ts';
import { metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { hasCommand } from '../../src/testing/netns.ts';
import { runMutual, startMeshUp } from './run-mutual.ts';

const skip = netnsUnavailableReason() ?? (hasCommand('curl') ? undefined : 'curl is not installed');

// Listens as most apps do, with no host: Node binds [::] (IPv4 too, v4-mapped).
const SERVER = `require('node:http').createServer((q, s) => s.end('app answered ' + (q.headers['x-mutual-client-id'] ?? 'in plain text'))).listen(8080)`;

let dir: string;
const started: ChildProcess[] = [];
const sh = (command: string, args: string[]) => execFileSync(command, args, { encoding: 'utf8' });
/** `curl` in a pod as its app's uid; stdout whether or not it succeeded. */
const curlIn = (netns: string, ...args: string[]) =>
  spawnSync(
    'ip',
    [
      'netns',
      'exec',
      netns,
      'setpriv',
      '--reuid=2103',
      '--regid=2103',
      '--clear-groups',
      'curl',
      '-sS',
      '-m',
      '5',
      ...args,
    ],
    { encoding: 'utf8' },
  ).stdout;
const ipv6Addresses = (netns: string, device: string) =>
  sh('ip', ['-n', netns, '-6', '-o', 'addr', 'show', 'dev', device])
    .split('\n')
    .map((line) => /inet6 ([0-9a-f:]+)\//.exec(line)?.[1])
    .filter((address) => address !== undefined);

/**
 * `mutual up --isolation netns` of `yaml`, written as <name>.yaml, with state in <name>/: resolves
 * once it is up or has exited; `runtime()` reads its runtime.json.
 */
async function upNetns(name: string, yaml: string) {
  const meshFile = join(dir, `${name}.yaml`);
  await writeFile(meshFile, yaml);
  const stateDir = join(dir, name);
  const mesh = await startMeshUp(
    ['-f', meshFile, '--isolation', 'netns', '--state-dir', stateDir, '--timeout', '20s'],
    'The mesh is up',
  );
  started.push(mesh.child);
  const runtime = async () =>
    JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  return { mesh, stateDir, runtime };
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-mesh-netns-apps-'));
  await chmod(dir, 0o755); // the apps run as uids of their own with this as their working directory
});

after(async () => {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  if (dir) {
    for (const state of ['ipv6', 'listen', 'skipped', 'port80', 'home', 'unmeshed', 'daemon', 'closed'])
      await runMutual(['down', '--state-dir', join(dir, state)]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('an app on [::] is reached only through its sidecar: no pod has IPv6 beyond loopback', {
  skip,
}, async () => {
  const {
    mesh,
    stateDir,
    runtime: readRuntime,
  } = await upNetns(
    'ipv6',
    `mode: STRICT
services:
  - name: server
    namespace: apps
    command: [node, -e, ${JSON.stringify(SERVER)}]
    ports: [8080]
  - name: client
    namespace: apps
    command: [sleep, infinity]
    upstreams: [server]
`,
  );
  assert.match(mesh.output(), /The mesh is up: 2 services/, mesh.output());
  const runtime = await readRuntime();
  const [server, client] = ['server', 'client'].map(
    (name) => runtime.services.find((service) => service.name === name)!.pod!.netns,
  ) as [string, string];

  // By name, over IPv4: through both sidecars, mTLS.
  assert.equal(
    curlIn(client, 'http://server:8080/'),
    'app answered spiffe://cluster.local/ns/apps/sa/client',
  );
  // Over IPv6, at whatever address the server's pod has on its link (once usable, past duplicate
  // address detection, on both ends): never the app in plain text.
  await waitUntil(
    async () =>
      ![server, client].some((pod) =>
        /tentative/.test(sh('ip', ['-n', pod, '-6', 'addr', 'show', 'dev', 'eth0'])),
      ),
    'IPv6 duplicate address detection in the pods',
  );
  for (const address of ipv6Addresses(server, 'eth0')) {
    const answer = curlIn(client, '-g', `http://[${address}%eth0]:8080/`);
    assert.doesNotMatch(
      answer,
      /app answered/,
      `the client reached the app at [${address}] past both sidecars`,
    );
  }
  for (const pod of [server, client]) {
    assert.deepEqual(ipv6Addresses(pod, 'eth0'), [], `${pod}'s eth0 has IPv6 addresses`);
    assert.deepEqual(ipv6Addresses(pod, 'lo'), ['::1'], `${pod} lost ::1`);
  }

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
});

test('an app listening only where it cannot be reached (pod address, IPv6-only [::]; 127.0.0.1 on a skipped port) fails up, named', {
  skip,
}, async () => {
  const cases = [
    {
      where: 'the pod address',
      host: "host: require('node:os').networkInterfaces().eth0[0].address",
      only: /only at 198\.1[89]\.\d+\.\d+, and its sidecar forwards to 127\.0\.0\.1:8080; listen on 0\.0\.0\.0, 127\.0\.0\.1 or a dual-stack \[::\]/,
    },
    {
      where: 'an IPv6-only [::]',
      host: "host: '::', ipv6Only: true",
      only: /only at \[::\] \(IPv6 only\), and its sidecar forwards to 127\.0\.0\.1:8080/,
    },
    {
      where: '127.0.0.1, on a skipped inbound port',
      host: "host: '127.0.0.1'",
      skipped: true,
      only: /only at 127\.0\.0\.1, and callers reach this skipped inbound port at 198\.1[89]\.\d+\.\d+:8080, past the sidecar; listen on 0\.0\.0\.0 or a dual-stack \[::\]/,
    },
  ];
  for (const { where, host, skipped, only } of cases) {
    const app = `require('node:http').createServer((q, s) => s.end('hi')).listen({ port: 8080, ${host} })`;
    const { mesh } = await upNetns(
      'listen',
      `services:
  - name: server
    namespace: apps
    command: [node, -e, ${JSON.stringify(app)}]
    ports: [8080]
${skipped ? '    skipInboundPorts: [8080]\n' : ''}`,
    );
    assert.doesNotMatch(mesh.output(), /The mesh is up/, `${where}: up called it ready`);
    if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
    const output = mesh.output();
    assert.equal(mesh.child.exitCode, 1, `${where}: ${output}`);
    assert.match(
      output,
      /error\[MUTUAL_MESH_START_FAILED\]: the app server \(port 8080, .*\) listens where it cannot be reached: it listens on port 8080 /,
      `${where}: ${output}`,
    );
    assert.match(output, only, `${where}: ${output}`);
  }
});

test('a skipped inbound port is served at the pod address, past the sidecar', { skip }, async () => {
  const app = `require('node:http').createServer((q, s) => s.end('skipped ' + (q.headers['x-mutual-client-id'] ?? 'in plain text'))).listen(9090, require('node:os').networkInterfaces().eth0[0].address)`;
  const {
    mesh,
    stateDir,
    runtime: readRuntime,
  } = await upNetns(
    'skipped',
    `services:
  - name: metrics
    namespace: apps
    command: [node, -e, ${JSON.stringify(app)}]
    ports: [9090]
    skipInboundPorts: [9090]
  - name: client
    namespace: apps
    command: [sleep, infinity]
    upstreams: ["metrics:9090"]
`,
  );
  assert.match(mesh.output(), /The mesh is up: 2 services/, mesh.output());
  const runtime = await readRuntime();
  const client = runtime.services.find((service) => service.name === 'client')!.pod!.netns;
  assert.equal(curlIn(client, 'http://metrics:9090/'), 'skipped in plain text');

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
});

test('an app that is not root listens on port 80 in its pod, and is called as http://web/', {
  skip,
}, async () => {
  const {
    mesh,
    stateDir,
    runtime: readRuntime,
  } = await upNetns(
    'port80',
    `services:
  - name: web
    namespace: apps
    command: [node, -e, ${JSON.stringify(SERVER.replace('listen(8080)', 'listen(80)'))}]
    ports: [80]
  - name: client
    namespace: apps
    command: [sleep, infinity]
    upstreams: [web]
`,
  );
  assert.match(mesh.output(), /The mesh is up: 2 services/, mesh.output());
  const runtime = await readRuntime();
  const client = runtime.services.find((service) => service.name === 'client')!.pod!.netns;
  assert.equal(curlIn(client, 'http://web/'), 'app answered spiffe://cluster.local/ns/apps/sa/client');
  assert.equal(
    curlIn(client, 'http://web.apps.svc.cluster.local/'),
    'app answered spiffe://cluster.local/ns/apps/sa/client',
  );

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
});

test('an app has a HOME of its own to write to (a build cache), removed by down', { skip }, async () => {
  // As `go run .` does before it listens: a cache directory under $HOME.
  const app = `const fs = require('node:fs'); const home = process.env.HOME; fs.mkdirSync(home + '/.cache/go-build', { recursive: true }); fs.writeFileSync(home + '/.cache/go-build/entry', 'x'); require('node:http').createServer((q, s) => s.end(home)).listen(8080)`;
  const {
    mesh,
    stateDir,
    runtime: readRuntime,
  } = await upNetns(
    'home',
    `services:
  - name: builder
    namespace: apps
    command: [node, -e, ${JSON.stringify(app)}]
    ports: [8080]
`,
  );
  assert.match(mesh.output(), /The mesh is up: 1 services?/, mesh.output());
  const runtime = await readRuntime();
  const home = curlIn(runtime.services[0]!.pod!.netns, 'http://127.0.0.1:8080/');
  assert.equal(home, `/run/mutual/${runtime.network!.id}/builder.home`);
  const owner = await stat(home);
  // The app's own uid (one per pod), not the 2103 curlIn borrows.
  const appUid = Number(
    /^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${runtime.services[0]!.app.pid}/status`, 'utf8'))![1],
  );
  assert.deepEqual([owner.uid, owner.mode & 0o777], [appUid, 0o700]);

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
  await assert.rejects(stat(home), { code: 'ENOENT' });
});

test('a call outside the mesh passes through in plain text; one refused there is reset and counted as failed', {
  skip,
}, async () => {
  const {
    mesh,
    stateDir,
    runtime: readRuntime,
  } = await upNetns(
    'unmeshed',
    `services:
  - name: server
    namespace: apps
    command: [node, -e, ${JSON.stringify(SERVER)}]
    ports: [8080]
  - name: client
    namespace: apps
    command: [sleep, infinity]
    upstreams: [server]
`,
  );
  assert.match(mesh.output(), /The mesh is up: 2 services/, mesh.output());
  const runtime = await readRuntime();
  const client = runtime.services.find((service) => service.name === 'client')!;
  // Outside the mesh: a plain server on the host's end of the mesh network, which speaks first.
  const host = createServer((socket) => socket.end('host answered'));
  host.listen(0, runtime.network!.hostAddress);
  await once(host, 'listening');
  const port = (host.address() as { port: number }).port;
  // A client that waits for the server's first words, as a server-speaks-first protocol's does.
  const wait = `const s = require('node:net').connect(${port}, 'mutual-host'); let got = ''; s.on('data', (d) => { got += d; }); s.on('end', () => console.log(JSON.stringify({ got, end: true }))); s.on('error', (e) => console.log(JSON.stringify({ got, error: e.code })))`;
  // Run without blocking this process, which serves the host side.
  const call = async () => {
    const child = spawn(
      'ip',
      [
        ...['netns', 'exec', client.pod!.netns],
        ...['setpriv', '--reuid=2103', '--regid=2103', '--clear-groups', process.execPath, '-e', wait],
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], timeout: 10_000 },
    );
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    await once(child, 'close');
    return JSON.parse(out);
  };
  assert.deepEqual(await call(), { got: 'host answered', end: true });
  host.close();
  await once(host, 'close');
  // Refused at the destination: the app's connection is reset, as its own connect would have been refused.
  assert.deepEqual(await call(), { got: '', error: 'ECONNRESET' });

  const destination = `${runtime.network!.hostAddress}:${port}`;
  const metrics = await (await fetch(`${client.adminUrl}/metrics`)).text();
  assert.equal(
    metricValue(metrics, 'mutual_outbound_refused_total', { reason: 'connect_failed', destination }),
    1,
    metrics,
  );
  assert.equal(
    metricValue(metrics, 'mutual_outbound_connections_total', { no_tls_reason: 'not_meshed', destination }),
    1,
    metrics,
  );
  const edges = await runMutual(['edges', '-o', 'json', '--state-dir', stateDir]);
  const edge = JSON.parse(edges.stdout).edges.find(
    (candidate: Record<string, unknown>) =>
      candidate.source === 'client' && candidate.destination === destination,
  );
  assert.equal(edge?.failed, 1, edges.stdout);

  const down = await runMutual(['down', '--state-dir', stateDir]);
  assert.equal(down.code, 0, down.stderr);
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
});

test('a server that puts itself in the background fails up saying so, and is not left running', {
  skip,
}, async () => {
  const marker = `daemon-marker-${process.pid}`;
  // As nginx does by default: a new session in the background, and the command ends with success.
  const { mesh } = await upNetns(
    'daemon',
    `services:
  - name: web
    namespace: apps
    command: setsid node -e "setTimeout(() => require('node:http').createServer((q, s) => s.end()).listen(8080), 1000)" ${marker} &
    ports: [8080]
`,
  );
  if (mesh.child.exitCode === null && mesh.child.signalCode === null) await once(mesh.child, 'exit');
  assert.equal(mesh.child.exitCode, 1, mesh.output());
  assert.match(
    mesh.output(),
    /the app web \(port 8080, .*\) exited \(code 0\): it ended with success before it listened, as a server that puts itself in the background does \(nginx without `daemon off;`/,
    mesh.output(),
  );
  const running = (await readdir('/proc')).filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
    } catch {
      return false; // gone meanwhile
    }
  });
  assert.deepEqual(running, [], `${marker} still runs`);
});

test('a project in a directory the app uid cannot enter is refused before anything starts, naming it', {
  skip,
}, async () => {
  // /home/USER is 0750 on Ubuntu: root (running up) goes in, the apps' uids do not.
  const home = join(dir, 'home-user');
  const project = join(home, 'project');
  await mkdir(project, { recursive: true, mode: 0o755 });
  await chmod(home, 0o750);
  await writeFile(join(project, 'server.js'), SERVER, { mode: 0o644 });
  const meshFile = join(project, 'mesh.yaml');
  await writeFile(
    meshFile,
    `services:
  - name: server
    namespace: apps
    command: [node, server.js]
    ports: [8080]
`,
  );
  const run = await runMutual([
    'up',
    '-f',
    meshFile,
    '--isolation',
    'netns',
    '--state-dir',
    join(dir, 'closed'),
  ]);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.match(
    run.stderr,
    new RegExp(
      `error\\[MUTUAL_MESH_CONFIG_INVALID\\]: .*services\\.server\\.cwd: the app runs in its pod as a uid of its own \\(2300000 and up, not root\\) and cannot enter ${home}, on the way to its working directory ${project} \\(mode 0750, owner uid 0, group gid 0\\); let other users in \\(\`chmod o\\+x ${home}\`\\)`,
    ),
    run.stderr,
  );
  assert.doesNotMatch(run.stdout + run.stderr, /✓ network/, 'the network was made');
});
