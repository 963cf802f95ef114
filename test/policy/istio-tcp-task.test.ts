// istio.io's "Authorization for TCP traffic" task, step by step, through a real sidecar: tcp-echo
// on policy ports 9000, 9001 and 9002 (opaque, as Istio's tcp ports), and an HTTP app on 8000.
// The task's verdicts: an ALLOW rule with an HTTP-only field (methods) never matches TCP, so every
// connection is rejected; a DENY rule drops it and denies every TCP connection its ports match;
// HTTP requests still see the methods.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

const TCP_PORTS = [9000, 9001, 9002] as const;

function tcpPolicy(action: 'ALLOW' | 'DENY', operation: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: tcp-policy, namespace: foo }
spec:
  selector: { matchLabels: { app: tcp-echo } }
  action: ${action}
  rules:
    - to: [{ operation: ${operation} }]
`;
}

let dir: string;
let server: ProxyProcess;
const echoes: Server[] = [];
let http: HttpServer;
let generation = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-tcp-task-'));
  await writeFile(join(dir, 'policy.yaml'), tcpPolicy('ALLOW', '{ ports: ["9000", "9001"] }'));
  const pki = await createTestPki(join(dir, 'pki'));
  const echo = await pki.workload('tcp-echo', { ns: 'foo' });
  for (let i = 0; i < TCP_PORTS.length; i++) {
    const app = createServer((socket) => socket.on('data', (data) => socket.end(`hello ${data}`)));
    echoes.push(app);
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  }
  http = createHttpServer((_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const appPorts = [...echoes, http].map((app) => (app.address() as AddressInfo).port);
  server = await startProxyProcess([
    ...['--cert', echo.certFile, '--key', echo.keyFile, '--bundle', echo.bundleFile],
    ...appPorts.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...TCP_PORTS.flatMap((port, i) => ['--policy-port', `${appPorts[i]}=${port}`]),
    ...['--policy-port', `${appPorts[3]}=8000`, '--opaque-ports', appPorts.slice(0, 3).join(',')],
    ...['--policy-dir', dir, '--namespace', 'foo', '--label', 'app=tcp-echo'],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await server.untilReady();
  generation = loadedGenerations();
});

after(async () => {
  await server?.stop();
  for (const app of echoes) app.close();
  http?.close();
  await rm(dir, { recursive: true, force: true });
});

function loadedGenerations(): number {
  return server.output().match(/policies loaded/g)?.length ?? 0;
}

/** Replaces the policy and waits until the sidecar has loaded it. */
async function apply(yaml: string): Promise<void> {
  await writeFile(join(dir, 'policy.yaml'), yaml);
  const before = generation;
  await waitUntil(async () => loadedGenerations() > before, 'the sidecar to load the new policy');
  generation = loadedGenerations();
}

/** `echo "port N" | nc tcp-echo N` in plain text: did tcp-echo answer? */
function tcpEcho(port: (typeof TCP_PORTS)[number]): Promise<boolean> {
  const listener = server.inbound[TCP_PORTS.indexOf(port)]!.port;
  return new Promise((resolve) => {
    const socket = connect(listener, '127.0.0.1', () => socket.write(`port ${port}\n`));
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(text === `hello port ${port}\n`));
  });
}

async function verdicts(): Promise<Record<string, boolean>> {
  const answers: Record<string, boolean> = {};
  for (const port of TCP_PORTS) answers[port] = await tcpEcho(port);
  return answers;
}

async function httpStatus(method: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${server.inbound[3]!.port}/ip`, { method });
  await response.arrayBuffer();
  return response.status;
}

test('ALLOW ports 9000, 9001: both answer; 9002 is rejected', async () => {
  assert.deepEqual(await verdicts(), { 9000: true, 9001: true, 9002: false });
});

test('ALLOW methods GET on 9000: the rule cannot match TCP, so every port is rejected', async () => {
  await apply(tcpPolicy('ALLOW', '{ methods: ["GET"], ports: ["9000"] }'));
  assert.deepEqual(await verdicts(), { 9000: false, 9001: false, 9002: false });
});

test('DENY methods GET: on TCP the rule loses methods and denies every port; HTTP sees the method', async () => {
  await apply(tcpPolicy('DENY', '{ methods: ["GET"] }'));
  assert.deepEqual(await verdicts(), { 9000: false, 9001: false, 9002: false });
  // tcp-echo's HTTP port (8000): the DENY applies to GET only.
  assert.equal(await httpStatus('GET'), 403);
  assert.equal(await httpStatus('POST'), 200);
});

test('DENY methods GET on port 9000: 9000 is denied, 9001 answers', async () => {
  await apply(tcpPolicy('DENY', '{ methods: ["GET"], ports: ["9000"] }'));
  assert.deepEqual(await verdicts(), { 9000: false, 9001: true, 9002: true });
});
