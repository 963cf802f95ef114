// A policy change while traffic runs reaches connections already open, as Istio's does (its
// sidecars drain the connections of a changed filter chain): a plaintext connection admitted under
// PERMISSIVE is closed once its port turns STRICT, and an opaque TCP connection is closed once a
// new policy denies it, while connections the new set still allows stay open. Before, only new
// connections saw the change: a plaintext HTTP/1 keep-alive client kept reaching the app for as
// long as it kept the connection busy, and `mutual check` said every connection was mTLS. An
// upgraded connection (WebSocket) is closed once policy denies the request that opened it.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

let dir: string;
let proxy: ProxyProcess;
let http: HttpServer;
const echoes: Server[] = [];
let loaded = 0;

const TCP_POLICY_PORTS = [9000, 9001] as const;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-walkthrough-established-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const workload = await pki.workload('api', { ns: 'shop' });
  for (let i = 0; i < TCP_POLICY_PORTS.length; i++) {
    // A long-lived TCP peer: echoes every chunk, as a database or a message broker stays connected.
    const echo = createServer((socket) =>
      socket.on('data', (data) => socket.write(data)).on('error', () => {}),
    );
    echoes.push(echo);
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  }
  http = createHttpServer((_request, response) => response.end('ok'));
  http.keepAliveTimeout = 60_000;
  // A WebSocket-like protocol: 101, then every chunk echoed.
  http.on('upgrade', (_request, socket: Socket) => {
    socket.on('error', () => {});
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (data) => socket.write(data));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  await writeFile(join(dir, 'policies.yaml'), '');
  const tcpPorts = echoes.map((echo) => (echo.address() as AddressInfo).port);
  const httpPort = (http.address() as AddressInfo).port;
  proxy = await startProxyProcess([
    ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
    ...[...tcpPorts, httpPort].flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...TCP_POLICY_PORTS.flatMap((port, i) => ['--policy-port', `${tcpPorts[i]}=${port}`]),
    ...['--policy-port', `${httpPort}=8080`, '--opaque-ports', tcpPorts.join(',')],
    ...['--policy-dir', dir, '--namespace', 'shop', '--label', 'app=api', '--mode', 'PERMISSIVE'],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await proxy.untilReady();
  loaded = loadedCount();
});

after(async () => {
  await proxy?.stop();
  for (const echo of echoes) echo.close();
  http?.close();
  await rm(dir, { recursive: true, force: true });
});

function loadedCount(): number {
  return proxy.output().match(/policies loaded/g)?.length ?? 0;
}

/** Writes the policy directory's one file and waits until the sidecar has loaded it. */
async function apply(yaml: string): Promise<void> {
  await writeFile(join(dir, 'policies.yaml'), yaml);
  const before = loaded;
  await waitUntil(async () => loadedCount() > before, 'the sidecar to load the new policies');
  loaded = loadedCount();
}

/** A plaintext connection to one inbound listener, with what it has read and whether it closed. */
async function open(listener: number) {
  const socket = connect(listener, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const state = { text: '', closed: false, socket };
  socket.on('data', (chunk: Buffer) => {
    state.text += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    state.closed = true;
  });
  return state;
}

async function echoRoundTrip(state: { text: string; socket: Socket }, word: string): Promise<void> {
  const from = state.text.length;
  state.socket.write(word);
  await waitUntil(async () => state.text.slice(from) === word, `the echo of "${word}"`).catch((error) => {
    throw new Error(`${error.message}: ${JSON.stringify(state.text)} ${proxy.output()}`);
  });
}

test('a DENY added while a TCP connection is open closes that connection; one it does not match stays open', async () => {
  const denied = await open(proxy.inbound[0]!.port);
  const kept = await open(proxy.inbound[1]!.port);
  await echoRoundTrip(denied, 'first words\n');
  await echoRoundTrip(kept, 'first words\n');

  await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-9000, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { ports: ["9000"] } }] }]
`);
  await waitUntil(async () => denied.closed, 'the sidecar to close the connection the new DENY matches');
  await echoRoundTrip(kept, 'more words\n');
  assert.equal(kept.closed, false);
  // Visible where users look for denials: the log names the policy, the metric counts it.
  assert.match(proxy.output(), /connection denied.*"policy":"shop\/deny-9000".*policy changed/);
  const metrics = await proxy.metrics();
  assert.equal(
    metricValue(metrics, 'mutual_authorization_decisions_total', {
      decision: 'deny',
      policy: 'shop/deny-9000',
    }),
    1,
  );
  kept.socket.destroy();
});

test('a plaintext HTTP/1 keep-alive connection is closed once its port turns STRICT', async () => {
  await apply('');
  const client = await open(proxy.inbound[2]!.port);
  const get = async () => {
    const from = client.text.length;
    client.socket.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n');
    await waitUntil(async () => client.closed || /\r\n\r\nok$/.test(client.text.slice(from)), 'an answer');
    return client.text.slice(from);
  };
  assert.match(await get(), /^HTTP\/1\.1 200/);

  await apply(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec: { mtls: { mode: STRICT } }
`);
  await waitUntil(
    async () => client.closed,
    'the sidecar to close the plaintext connection on a STRICT port',
  );
  assert.match(proxy.output(), /plaintext connection closed: its port is now STRICT/);
  // A new plaintext connection is refused as before.
  const fresh = await open(proxy.inbound[2]!.port);
  fresh.socket.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n');
  await waitUntil(async () => fresh.closed, 'the new plaintext connection to be refused');
  assert.equal(fresh.text, '');
});

test('an upgraded connection (WebSocket) is closed once a new policy denies its request; another path stays', async () => {
  await apply('');
  const upgrade = async (path: string) => {
    const client = await open(proxy.inbound[2]!.port);
    client.socket.write(`GET ${path} HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`);
    await waitUntil(async () => client.text.includes('\r\n\r\n'), `the 101 for ${path}`);
    assert.match(client.text, /^HTTP\/1\.1 101/);
    client.text = '';
    return client;
  };
  const chat = await upgrade('/chat');
  const feed = await upgrade('/feed');
  await echoRoundTrip(chat, 'hello chat\n');
  await echoRoundTrip(feed, 'hello feed\n');

  await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-chat, namespace: shop }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/chat"] } }] }]
`);
  await waitUntil(
    async () => chat.closed,
    'the sidecar to close the upgraded connection the new DENY matches',
  );
  await echoRoundTrip(feed, 'still here\n');
  assert.equal(feed.closed, false);
  assert.match(proxy.output(), /connection denied.*"policy":"shop\/deny-chat".*policy changed/);
  feed.socket.destroy();
});
