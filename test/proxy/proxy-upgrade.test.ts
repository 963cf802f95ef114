// An HTTP/1 upgrade the app does not accept must not leave the connection spliced to the app: the
// client's next request on it would reach the app past the server proxy's policy, carrying any
// x-mutual-client-id it liked ("WebSocket smuggling"). Real proxies, a plain node:http app.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
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

const NO_SECRETS = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-secret, namespace: demo }
spec:
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/secret"] } }]
`;

let dir: string;
let app: Server;
const proxies: ProxyProcess[] = [];
/** What the app was asked: path and the client identity it was given. */
const seen: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-upgrade-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'no-secret.yaml'), NO_SECRETS);
  const pki = await createTestPki(join(dir, 'pki'));
  const [emoji, web] = await Promise.all(['emoji', 'web'].map((name) => pki.workload(name)));
  // No 'upgrade' listener: node answers an upgrade request as an ordinary one (200).
  app = createServer((request, response) => {
    seen.push(`${request.url} ${request.headers['x-mutual-client-id']}`);
    response.end('hello');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const server = await startProxyProcess([
    ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
    ...['--policy-dir', policyDir, '--admin-listen', '127.0.0.1:0'],
  ]);
  proxies.push(server);
  proxies.push(
    await startProxyProcess([
      ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]),
  );
  for (const proxy of proxies) await proxy.untilReady();
});

after(async () => {
  await Promise.all(proxies.map((proxy) => proxy.stop()));
  app?.close();
  await rm(dir, { recursive: true, force: true });
});

test('an upgrade the app answers with 200 gets that answer, then the connection closes', async () => {
  const socket = connect(proxies[1]!.outbound[0]!.port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString();
  });
  socket.on('error', () => {});
  // The second request rides behind the upgrade: were the connection spliced to the app whatever
  // its answer, it would reach the app unchecked and with the forged identity.
  socket.end(
    'GET /public HTTP/1.1\r\nhost: emoji\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n' +
      'GET /secret HTTP/1.1\r\nhost: emoji\r\nx-mutual-client-id: spiffe://cluster.local/ns/demo/sa/admin\r\n\r\n',
  );
  await new Promise((resolve) => socket.once('close', resolve));
  assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(received.endsWith('\r\n\r\nhello'), received);
  assert.equal(received.match(/HTTP\/1\.1/g)?.length, 1, received);
  assert.deepEqual(seen, ['/public spiffe://cluster.local/ns/demo/sa/web']);
});

test('a client that keeps writing after the upgrade was refused and answered does not hold the connection open', async () => {
  const client = proxies[1]!;
  const socket = connect({ port: client.outbound[0]!.port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString();
  });
  const closed = new Promise((resolve) => socket.once('close', resolve));
  // Half-open on purpose: the client never ends its side, as a WebSocket client that missed the
  // refusal would not.
  socket.write('GET /public HTTP/1.1\r\nhost: emoji\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
  await new Promise((resolve) => socket.once('end', resolve));
  assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
  socket.write('more bytes that have nowhere to go');
  await waitUntil(
    async () => metricValue(await client.metrics(), 'mutual_outbound_connections_open') === 0,
    'the client sidecar lets go of the connection',
  );
  // The sidecar's side is gone: the client learns it on its next write.
  socket.write('and more');
  await closed;
});
