// gRPC and TCP kubelet probes under STRICT, with real processes: the injector's probe rewrite turns
// an app container's grpc and tcpSocket probes into httpGet probes on the proxy's admin port and
// MUTUAL_PROXY_APP_PROBES; a real `mutual proxy run` in STRICT mode answers them by making the
// gRPC health check (grpc.health.v1.Health/Check, plaintext HTTP/2) against a real grpcio server
// (test/k8s/grpc-health-server.py; needs Debian's python3-grpcio) or the TCP connect on 127.0.0.1.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { rewriteAppProbes } from '../../src/k8s/index.ts';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
} from '../../src/testing/mesh-pki.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

const PYTHON = '/usr/bin/python3';
const hasGrpcio = spawnSync(PYTHON, ['-c', 'import grpc'], { timeout: 20_000 }).status === 0;
const skip = !hasGrpcio && 'needs python3-grpcio (apt-get install python3-grpcio)';

let dir: string;
let pki: TestPki;
let proxy: ProxyProcess;
let server: ChildProcessWithoutNullStreams;
let ports: { health: number; bare: number };
const tcpApp = createServer((socket) => socket.destroy());

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

before(async () => {
  if (!hasGrpcio) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-grpc-probes-'));
  pki = await createTestPki(join(dir, 'pki'));
  server = spawn(PYTHON, [join(repoRoot(), 'test', 'k8s', 'grpc-health-server.py')]);
  server.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const [line] = (await once(createInterface({ input: server.stdout }), 'line')) as [string];
  ports = JSON.parse(line) as { health: number; bare: number };
  await new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve));
  const down = await closedPort();
  const grpc = (port: number, service?: string, timeoutSeconds = 2) => ({
    grpc: { port, ...(service === undefined ? {} : { service }) },
    timeoutSeconds,
  });
  // The containers as a user writes them; the injector rewrites them and hands the originals over.
  const rewrite = rewriteAppProbes(
    [
      {
        name: 'api',
        ports: [{ name: 'tcp', containerPort: (tcpApp.address() as AddressInfo).port }],
        livenessProbe: grpc(ports.health),
        readinessProbe: grpc(ports.health, 'orders'),
        startupProbe: { tcpSocket: { port: 'tcp' } },
      },
      {
        name: 'sick',
        livenessProbe: grpc(ports.health, 'sick'),
        readinessProbe: grpc(ports.health, 'absent'),
        startupProbe: grpc(ports.health, 'slow', 1),
      },
      {
        name: 'down',
        livenessProbe: grpc(ports.bare),
        readinessProbe: grpc(down),
        startupProbe: { tcpSocket: { port: down } },
      },
    ],
    true,
  );
  assert.equal(Object.keys(rewrite.probes).length, 9);
  const workload = await pki.workload('api');
  proxy = await startProxyProcess(
    [
      ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
      ...['--inbound', `127.0.0.1:0=${ports.health}`, '--mode', 'STRICT'],
      ...['--admin-listen', '127.0.0.1:0', '--drain-timeout', '1s'],
    ],
    { MUTUAL_PROXY_APP_PROBES: JSON.stringify(rewrite.probes) },
  );
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  if (server) {
    server.stdin.end();
    if (server.exitCode === null) await once(server, 'exit');
  }
  tcpApp.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function probe(path: string) {
  const response = await fetch(`${proxy.adminUrl}${path}`, { headers: { 'user-agent': 'kube-probe/1.31' } });
  return { status: response.status, body: (await response.text()).trim() };
}

test('a grpc probe passes through the admin port when the app reports SERVING, for the server and for a named service', {
  skip,
}, async () => {
  const server = await probe('/app-health/api/livez');
  assert.deepEqual(server, {
    status: 200,
    body: `127.0.0.1:${ports.health} (gRPC health of the server): SERVING`,
  });
  const named = await probe('/app-health/api/readyz');
  assert.deepEqual(named, {
    status: 200,
    body: `127.0.0.1:${ports.health} (gRPC health of "orders"): SERVING`,
  });
});

test('a grpc probe fails with 503 as the kubelet would: NOT_SERVING, NOT_FOUND, too slow, no health service, nothing listening', {
  skip,
}, async () => {
  const at = `127.0.0.1:${ports.health}`;
  assert.deepEqual(await probe('/app-health/sick/livez'), {
    status: 503,
    body: `${at} (gRPC health of "sick"): service unhealthy (responded with NOT_SERVING)`,
  });
  assert.deepEqual(await probe('/app-health/sick/readyz'), {
    status: 503,
    body: `${at} (gRPC health of "absent"): health check failed: NOT_FOUND (unknown service absent)`,
  });
  assert.deepEqual(await probe('/app-health/sick/startupz'), {
    status: 503,
    body: `${at} (gRPC health of "slow") did not answer within 1000 ms`,
  });
  const bare = await probe('/app-health/down/livez');
  assert.equal(bare.status, 503);
  assert.match(
    bare.body,
    /does not implement the gRPC health protocol \(grpc\.health\.v1\.Health\): UNIMPLEMENTED/,
  );
  const down = await probe('/app-health/down/readyz');
  assert.equal(down.status, 503);
  assert.match(down.body, /not reachable: ECONNREFUSED/);
});

test('a tcpSocket probe checks the app, not the proxy: 200 when the app accepts, 503 when nothing listens', {
  skip,
}, async () => {
  const up = await probe('/app-health/api/startupz');
  assert.equal(up.status, 200, up.body);
  assert.match(up.body, /accepted the connection/);
  const down = await probe('/app-health/down/startupz');
  assert.equal(down.status, 503);
  assert.match(down.body, /not reachable: ECONNREFUSED/);
  // Why the rewrite: left alone, the kubelet's connect lands on the proxy's inbound, which accepts
  // it whatever the app behind it does (the kubelet sends nothing and counts the connect a pass).
  const inbound = proxy.inbound[0]!;
  const socket = connect({ host: inbound.host, port: inbound.port });
  const [event] = await Promise.race([
    once(socket, 'connect').then(() => ['connect']),
    once(socket, 'error'),
  ]);
  socket.destroy();
  assert.equal(event, 'connect');
});

test("without the rewrite the kubelet's plaintext gRPC call through the STRICT inbound is refused", {
  skip,
}, async () => {
  // The inbound forwards to the health server: only the proxy's refusal stands in the way.
  const inbound = proxy.inbound[0]!;
  const { connect } = await import('node:http2');
  const session = connect(`http://${inbound.host}:${inbound.port}`);
  const failure = await new Promise<string>((resolve) => {
    session.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    const stream = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
    });
    stream.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    stream.on('response', (headers) => resolve(`answered ${String(headers[':status'])}`));
    stream.on('close', () => resolve('closed'));
    session.on('close', () => resolve('closed'));
    stream.end(Buffer.alloc(5));
  });
  session.destroy();
  assert.doesNotMatch(failure, /^answered/);
});
