// An app with a livenessProbe in mesh.yaml that stops answering it is killed and started again by
// `mutual up`, as the kubelet does with a container's livenessProbe: an httpGet probe on an app
// stopped with SIGSTOP (as a deadlock or a busy loop would leave it), a tcpSocket probe on an app
// that closed its listening socket and lives on, an app with restart: never, killed and left
// down, an HTTPS app (a self-signed certificate, as the kubelet does not verify it either) stopped
// with SIGSTOP, and a real grpcio app (test/k8s/grpc-health-server.py; Debian's python3-grpcio)
// whose health service turns NOT_SERVING. Probes every 2 s, 2 failures in a row
// (initialDelaySeconds 2 after a restart), so the test does not wait the kubelet's 30 s; the
// processes are real.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createSelfSignedCertificate } from '../../src/testing/local-server-pki.ts';
import { waitUntil } from '../../src/testing/mesh-pki.ts';
import {
  awaitReplaced,
  callThrough,
  continueStopped,
  IDLE_APP,
  isAlive,
  type RecordedProcess,
  type RunningMesh,
  readRuntime,
  upMeshFile,
} from './mesh-processes.ts';
import { type MeshUp, repoRoot, runMutual } from './run-mutual.ts';

const PYTHON = '/usr/bin/python3';
const hasGrpcio = spawnSync(PYTHON, ['-c', 'import grpc'], { timeout: 20_000 }).status === 0;
const skipGrpc = !hasGrpcio && 'needs python3-grpcio (apt-get install python3-grpcio)';

let tlsDir: string;
let state: string;
let up: MeshUp;
let mesh: RunningMesh | undefined;
const stopped: number[] = [];

// GET /healthz answers 200; GET /close closes the listening socket and the process lives on.
const SERVER = [
  "const server = require('node:http').createServer((q, s) => {",
  "  if (q.url === '/close') { server.close(); s.end('closed'); return; }",
  "  s.end(q.url === '/healthz' ? 'ok' : 'app says hi');",
  '});',
  "server.listen(Number(process.env.PORT), '127.0.0.1');",
  'setInterval(() => {}, 1000);',
].join(' ');
const PROBE = 'initialDelaySeconds: 2, periodSeconds: 2, failureThreshold: 2, timeoutSeconds: 1';
// GET /healthz over TLS answers 200, with the certificate in $TLS_DIR.
const HTTPS_SERVER = [
  "const { readFileSync } = require('node:fs');",
  "const at = (name) => readFileSync(require('node:path').join(process.env.TLS_DIR, name));",
  "require('node:https').createServer({ key: at('app.key'), cert: at('app.crt') }, (q, s) => {",
  "  s.end(q.url === '/healthz' ? 'ok' : 'app says hi');",
  "}).listen(Number(process.env.PORT), '127.0.0.1');",
  'setInterval(() => {}, 1000);',
].join(' ');

before(async () => {
  tlsDir = await mkdtemp(join(tmpdir(), 'mutual-app-liveness-tls-'));
  await createSelfSignedCertificate(tlsDir, 'secure.invalid');
  const service = (name: string, extra: string[]) => [
    `  - name: ${name}`,
    `    command: [node, -e, ${JSON.stringify(SERVER)}]`,
    '    ports: [8080]',
    ...extra,
  ];
  mesh = await upMeshFile('mutual-app-liveness-', [
    'services:',
    ...service('api', [
      `    livenessProbe: { httpGet: { path: /healthz, httpHeaders: [{ name: X-Probe, value: "1" }] }, ${PROBE} }`,
    ]),
    ...service('cache', [`    livenessProbe: { tcpSocket: {}, ${PROBE} }`]),
    ...service('once', ['    restart: never', `    livenessProbe: { tcpSocket: { port: 8080 }, ${PROBE} }`]),
    '  - name: secure',
    `    command: [node, -e, ${JSON.stringify(HTTPS_SERVER)}]`,
    `    env: { TLS_DIR: ${JSON.stringify(tlsDir)} }`,
    '    ports: [{ port: 8443, protocol: tcp }]',
    `    livenessProbe: { httpGet: { path: /healthz, scheme: HTTPS }, ${PROBE} }`,
    ...(hasGrpcio
      ? [
          '  - name: grpc',
          `    command: [${PYTHON}, ${JSON.stringify(join(repoRoot(), 'test', 'k8s', 'grpc-health-server.py'))}, --port-from-env]`,
          '    ports: [{ port: 9090, protocol: tcp }]',
          `    livenessProbe: { grpc: {}, ${PROBE} }`,
        ]
      : []),
    '  - name: client',
    `    command: [node, -e, ${JSON.stringify(IDLE_APP)}]`,
    '    upstreams: [api, cache, once]',
  ]);
  ({ state, up } = mesh);
});

after(async () => {
  continueStopped(stopped);
  await mesh?.stop();
  if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
});

type Recorded = RecordedProcess;
interface Service {
  name: string;
  app: Recorded;
  ports: Array<{ port: number; appPort: number }>;
  upstreams: Array<{ service: string; localAddress: string }>;
}

async function service(name: string): Promise<Service> {
  const runtime = await readRuntime<{ services: Service[] }>(state);
  return runtime.services.find((entry) => entry.name === name)!;
}

/** GET `path` of `name` through client's sidecar (its upstream port), over mTLS to the app's sidecar. */
async function call(name: string, path = '/'): Promise<string> {
  const client = await service('client');
  return callThrough(client.upstreams.find((entry) => entry.service === name)!.localAddress, path);
}

/** Waits until runtime.json names a new, live app for `name` (not `before`), and the old one is gone. */
async function awaitRestart(name: string, before: number): Promise<Recorded> {
  // initialDelaySeconds and the window (2 + 4 s) and the first restart's pause (1 s).
  await awaitReplaced(
    `the app ${name}`,
    before,
    async () => (await service(name)).app.pid,
    () => up.output(),
  );
  return (await service(name)).app;
}

test('httpGet: a stopped app is killed and started again, and calls through its sidecar work again', async () => {
  // Under a loaded CI run api once exited with code 1 at start (its log was gone; most likely
  // EADDRINUSE, its port taken by another test's process) and up had started it again: wait for
  // it to answer, and count the liveness restart from there.
  await waitUntil(async () => (await call('api')) === '200 app says hi', 'api answers through its sidecar');
  const before = await service('api');
  const url = `http://127.0.0.1:${before.ports[0]!.appPort}/healthz`;
  process.kill(before.app.pid, 'SIGSTOP');
  stopped.push(before.app.pid);
  const recorded = await awaitRestart('api', before.app.pid);
  const why = `failed its livenessProbe (GET ${url}) 2 times in 4 s (no answer within 1 s)`;
  assert.ok(
    up.output().includes(`! the app api ${why}: killed it (liveness); starting it again in 1s; its log: `),
    up.output(),
  );
  assert.match(up.output(), /✓ the app api started again \(pid \d+\)/);
  assert.equal(recorded.restarts, (before.app.restarts ?? 0) + 1);
  assert.deepEqual(
    { ...recorded.lastExit, at: undefined },
    { code: null, signal: 'SIGKILL', at: undefined, reason: 'liveness', message: why },
  );
  await waitUntil(async () => (await call('api')) === '200 app says hi', 'api answers through its sidecar');
  // Its log says why, at the end of the run before the restart.
  const log = await readFile(recorded.log, 'utf8');
  assert.ok(log.includes(`"level":"error","msg":"killed by mutual up: ${why}"}\n`), log);
});

test('tcpSocket: an app that stopped listening is killed and started again', async () => {
  const before = await service('cache');
  assert.equal(await call('cache', '/close'), '200 closed');
  const recorded = await awaitRestart('cache', before.app.pid);
  assert.equal(recorded.lastExit?.reason, 'liveness');
  assert.equal(
    recorded.lastExit?.message,
    `failed its livenessProbe (tcpSocket 127.0.0.1:${before.ports[0]!.appPort}) 2 times in 4 s (ECONNREFUSED)`,
  );
  await waitUntil(async () => (await call('cache')) === '200 app says hi', 'cache answers again');
});

test('restart: never: an app that fails its livenessProbe is killed and not started again, and up says so', async () => {
  const before = await service('once');
  assert.equal(await call('once', '/close'), '200 closed');
  // The window (4 s) and room for a loaded machine: longer than waitUntil's 10 s.
  const deadline = Date.now() + 30_000;
  while (isAlive(before.app.pid) || !up.output().includes('! the app once failed its livenessProbe')) {
    assert.ok(Date.now() < deadline, `the app once killed (output: ${up.output()})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.match(
    up.output(),
    /! the app once failed its livenessProbe \(tcpSocket 127\.0\.0\.1:\d+\) 2 times in 4 s \(ECONNREFUSED\): killed it \(liveness\), and not started again: its restart is never \(as restartPolicy: Never in Kubernetes\)/,
  );
  assert.doesNotMatch(up.output(), /the app once started again/);
  assert.equal((await service('once')).app.pid, before.app.pid);
});

test('httpGet scheme HTTPS: an app serving TLS on a self-signed certificate passes; stopped, its handshake hangs, and it is killed and started again', async () => {
  const before = await service('secure');
  // Probed every 2 s since the mesh came up (the tests above took longer than the 4 s window):
  // an unverified, self-signed certificate passes, as with the kubelet.
  assert.equal(before.app.restarts ?? 0, 0, up.output());
  assert.doesNotMatch(up.output(), /the app secure failed/);
  process.kill(before.app.pid, 'SIGSTOP');
  stopped.push(before.app.pid);
  const recorded = await awaitRestart('secure', before.app.pid);
  const why = `failed its livenessProbe (GET https://127.0.0.1:${before.ports[0]!.appPort}/healthz) 2 times in 4 s (did not complete the TLS handshake within 1000 ms)`;
  assert.ok(up.output().includes(`! the app secure ${why}: killed it (liveness)`), up.output());
  assert.equal(recorded.lastExit?.reason, 'liveness');
  assert.equal(recorded.lastExit?.message, why);
});

test('grpc: an app whose grpc.health.v1 health turns NOT_SERVING is killed and started again', {
  skip: skipGrpc,
}, async () => {
  const before = await service('grpc');
  assert.equal(before.app.restarts ?? 0, 0, up.output());
  assert.doesNotMatch(up.output(), /the app grpc failed/);
  process.kill(before.app.pid, 'SIGUSR1');
  const recorded = await awaitRestart('grpc', before.app.pid);
  const why = `failed its livenessProbe (gRPC health check of the server at 127.0.0.1:${before.ports[0]!.appPort}) 2 times in 4 s (service unhealthy (responded with NOT_SERVING))`;
  assert.ok(up.output().includes(`! the app grpc ${why}: killed it (liveness)`), up.output());
  assert.equal(recorded.lastExit?.message, why);
});

test('mutual check says which app was killed for liveness, and why', async () => {
  const check = await runMutual(['check', '--state-dir', state]);
  assert.match(
    check.stdout,
    /the app api: \d+ times?, the last after `mutual up` killed it for liveness: it failed its livenessProbe \(GET http:\/\/127\.0\.0\.1:\d+\/healthz\) 2 times in 4 s \(no answer within 1 s\), at \S+; its log: \S+api\.log/,
    check.stdout,
  );
  assert.match(
    check.stdout,
    /the app cache: 1 time, the last after `mutual up` killed it for liveness: it failed its livenessProbe \(tcpSocket/,
    check.stdout,
  );
});
