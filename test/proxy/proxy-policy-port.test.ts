// Port-level policy through a real sidecar pair whose apps listen on ports of their own, as in a
// loopback mesh: `--policy-port APP_PORT=PORT` makes policies see 8080 and 9090, the ports they
// name, while connections still go to the app ports and metrics still carry them.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttp2Server, connect as http2Connect } from 'node:http2';
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

const head = (kind: string, name: string) =>
  `apiVersion: security.istio.io/v1\nkind: ${kind}\nmetadata: { name: ${name}, namespace: demo }\nspec:\n`;
const POLICIES: Record<string, string> = {
  'strict.yaml': `${head('PeerAuthentication', 'default')}  mtls: { mode: STRICT }\n`,
  'emoji-peer.yaml': `${head('PeerAuthentication', 'emoji-8080')}  selector: { matchLabels: { app: emoji } }\n  portLevelMtls:\n    8080: { mode: PERMISSIVE }\n`,
  'deny-port.yaml': `${head('AuthorizationPolicy', 'deny-by-port')}  selector: { matchLabels: { app: emoji } }\n  action: DENY\n  rules:\n    - to: [{ operation: { ports: ["8080"], paths: ["/by-port"] } }]\n`,
  'deny-when.yaml': `${head('AuthorizationPolicy', 'deny-by-when')}  selector: { matchLabels: { app: emoji } }\n  action: DENY\n  rules:\n    - to: [{ operation: { paths: ["/by-when"] } }]\n      when: [{ key: destination.port, values: ["9090"] }]\n`,
};

let dir: string;
const apps: Array<Server | ReturnType<typeof createHttp2Server>> = [];
const appPorts: number[] = [];
let server: ProxyProcess;
let client: ProxyProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-port-'));
  await mkdir(join(dir, 'policies'));
  for (const [name, yaml] of Object.entries(POLICIES)) await writeFile(join(dir, 'policies', name), yaml);
  const pki = await createTestPki(join(dir, 'pki'));
  const [emoji, web] = await Promise.all([pki.workload('emoji'), pki.workload('web')]);
  for (let i = 0; i < 2; i++) {
    const app = createServer((request, response) => response.end(`ok ${request.url}`));
    apps.push(app);
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    appPorts.push((app.address() as AddressInfo).port);
  }
  // A third app speaks HTTP/2 (h2c), also declared as 9090.
  const h2App = createHttp2Server((request, response) => response.end(`ok ${request.url}`));
  apps.push(h2App);
  await new Promise<void>((resolve) => h2App.listen(0, '127.0.0.1', resolve));
  appPorts.push((h2App.address() as AddressInfo).port);
  server = await startProxyProcess([
    ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
    ...appPorts.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...['--policy-port', `${appPorts[0]}=8080`, '--policy-port', `${appPorts[1]}=9090`],
    ...['--policy-port', `${appPorts[2]}=9090`],
    ...['--policy-dir', join(dir, 'policies'), '--label', 'app=emoji', '--admin-listen', '127.0.0.1:0'],
  ]);
  client = await startProxyProcess([
    ...['--cert', web!.certFile, '--key', web!.keyFile, '--bundle', web!.bundleFile],
    ...server.inbound.flatMap((inbound) => [
      '--upstream',
      `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${inbound.port}`,
    ]),
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  for (const app of apps) {
    app.close();
    if ('closeAllConnections' in app) app.closeAllConnections();
  }
  await rm(dir, { recursive: true, force: true });
});

/** GET `path` through web's sidecar (mTLS) to the app declared as `port`. */
const viaMesh = (port: 8080 | 9090, path: string) =>
  fetch(`http://127.0.0.1:${client.outbound[port === 8080 ? 0 : 1]!.port}${path}`);
/** GET `path` in plain text straight at emoji's inbound for `port`; the status, or the error. */
const plain = (port: 8080 | 9090, path: string) =>
  fetch(`http://127.0.0.1:${server.inbound[port === 8080 ? 0 : 1]!.port}${path}`).then(
    (response) => response.status,
    (error: Error) => error.message,
  );

test('the sidecar says which port policies see', () => {
  assert.match(server.output(), new RegExp(`→ app 127\\.0\\.0\\.1:${appPorts[0]} \\(policy port 8080\\)`));
});

test('portLevelMtls 8080: PERMISSIVE under a STRICT namespace takes plain text on 8080 only', async () => {
  // Before: matched against the app port, 8080 stayed STRICT ('plaintext refused on a STRICT port').
  assert.equal(await plain(8080, '/plain'), 200);
  assert.equal(await plain(9090, '/plain'), 'fetch failed');
  // Each of the three ports is named: the policy's, the app's, and the listener the client dialled.
  assert.match(
    server.output(),
    new RegExp(
      `"plaintext refused on a STRICT port","port":9090,"appPort":${appPorts[1]},"listener":${server.inbound[1]!.port}`,
    ),
  );
});

test('AuthorizationPolicy ports: ["8080"] denies on 8080, not on 9090; metrics keep the app port', async () => {
  const denied = await viaMesh(8080, '/by-port');
  assert.equal(denied.status, 403);
  assert.equal(denied.headers.get('x-mutual-denied-by'), 'demo/deny-by-port');
  const allowed = await viaMesh(9090, '/by-port');
  assert.equal(allowed.status, 200);
  assert.equal(await allowed.text(), 'ok /by-port');
  const metrics = await server.metrics();
  const denials = (port: number) =>
    metricValue(metrics, 'mutual_authorization_decisions_total', {
      decision: 'deny',
      policy: 'demo/deny-by-port',
      port: String(port),
    });
  assert.equal(denials(appPorts[0]!), 1, metrics);
  // A TCP stream on 8080: denied too (a DENY rule's HTTP fields do not narrow it), logged at 8080.
  const socket = connect(client.outbound[0]!.port, '127.0.0.1');
  socket.on('error', () => {});
  socket.end('hello\n');
  await once(socket, 'close');
  await waitUntil(async () => /"connection denied"/.test(server.output()), 'the denial in the log');
  assert.match(
    server.output(),
    new RegExp(`"connection denied","policy":"demo/deny-by-port",.*"port":8080,"appPort":${appPorts[0]}`),
  );
});

test('when destination.port: ["9090"] denies on 9090 (HTTP/1 and HTTP/2), not on 8080', async () => {
  const denied = await viaMesh(9090, '/by-when');
  assert.equal(denied.status, 403);
  assert.equal(denied.headers.get('x-mutual-denied-by'), 'demo/deny-by-when');
  assert.equal((await viaMesh(8080, '/by-when')).status, 200);
  const session = http2Connect(`http://127.0.0.1:${client.outbound[2]!.port}`);
  try {
    const status = (path: string) =>
      new Promise<unknown>((resolve, reject) => {
        const stream = session.request({ ':path': path });
        stream.once('response', (headers) => resolve(headers[':status'])).once('error', reject);
        stream.resume();
      });
    assert.equal(await status('/by-when'), 403);
    assert.equal(await status('/by-port'), 200);
  } finally {
    session.close();
  }
});
