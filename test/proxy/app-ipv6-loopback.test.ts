// An app that listens on ::1 alone, as a Node app doing `listen(port, 'localhost')` does wherever
// localhost resolves to ::1 first (Debian, macOS, a Kubernetes pod). `curl localhost:PORT` reaches
// it, and so must its sidecar: HTTP/1, an upgrade, h2c and opaque TCP, through a real pair. Before,
// the inbound dialled 127.0.0.1 only, and every call got 502 app_unavailable.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request } from 'node:http';
import { connect as connectHttp2, createServer as createHttp2Server } from 'node:http2';
import { type AddressInfo, connect, createServer as createTcpServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

let dir: string;
const apps: Server[] = [];
let serverSidecar: ProxyProcess;
let clientSidecar: ProxyProcess;
/** The client sidecar's upstream port for each app, and for a port where nothing listens. */
const via: Record<'http1' | 'h2c' | 'tcp' | 'nothing', number> = { http1: 0, h2c: 0, tcp: 0, nothing: 0 };

async function listenOnIpv6Loopback(server: Server): Promise<number> {
  apps.push(server);
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'app-ipv6-loopback-'));
  const http1 = createHttpServer((req, res) => res.end(`http1 on ${req.socket.localAddress}`));
  http1.on('upgrade', (_req, socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    socket.pipe(socket);
  });
  const h2c = createHttp2Server();
  h2c.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end(`h2c on ${stream.session?.socket.localAddress}`);
  });
  const echo = createTcpServer((socket) => socket.pipe(socket));
  const ports = [
    await listenOnIpv6Loopback(http1),
    await listenOnIpv6Loopback(h2c as unknown as Server),
    await listenOnIpv6Loopback(echo),
  ];
  // A port where nothing listens on either loopback: taken and released.
  const free = createTcpServer();
  await new Promise<void>((resolve) => free.listen(0, '::1', resolve));
  ports.push((free.address() as AddressInfo).port);
  await new Promise((resolve) => free.close(resolve));

  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  const web = await pki.workload('web');
  serverSidecar = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...ports.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...['--opaque-ports', String(ports[2]), '--admin-listen', '127.0.0.1:0'],
  ]);
  clientSidecar = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...serverSidecar.inbound.flatMap(({ port }) => [
      '--upstream',
      `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${port}`,
    ]),
    ...['--opaque-ports', String(ports[2]), '--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([serverSidecar.untilReady(), clientSidecar.untilReady()]);
  [via.http1, via.h2c, via.tcp, via.nothing] = clientSidecar.outbound.map(({ port }) => port) as [
    number,
    number,
    number,
    number,
  ];
});

after(async () => {
  await Promise.all([serverSidecar?.stop(), clientSidecar?.stop()]);
  for (const app of apps) app.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

test('HTTP/1 to an app on ::1 only reaches it', async () => {
  for (let i = 0; i < 3; i++) assert.deepEqual(await get(via.http1), { status: 200, body: 'http1 on ::1' });
});

test('an upgrade to an app on ::1 only becomes its byte stream', async () => {
  const socket = connect(via.http1, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk) => {
    text += chunk;
  });
  socket.write('GET / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  for (let i = 0; i < 50 && !text.includes('\r\n\r\n'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(text, /^HTTP\/1\.1 101 /);
  socket.write('ping over the upgrade');
  for (let i = 0; i < 50 && !text.endsWith('ping over the upgrade'); i++)
    await new Promise((r) => setTimeout(r, 50));
  socket.destroy();
  assert.ok(text.endsWith('ping over the upgrade'), JSON.stringify(text));
});

test('h2c to an app on ::1 only reaches it', async () => {
  const session = connectHttp2(`http://127.0.0.1:${via.h2c}`);
  try {
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': '/' });
      let text = '';
      stream.on('data', (chunk) => {
        text += chunk;
      });
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
    });
    assert.equal(body, 'h2c on ::1');
  } finally {
    session.close();
  }
});

test('opaque TCP to an app on ::1 only reaches it', async () => {
  const socket = connect(via.tcp, '127.0.0.1');
  let echoed = '';
  socket.on('data', (chunk) => {
    echoed += chunk;
  });
  socket.write('\x00\x01opaque bytes');
  for (let i = 0; i < 100 && echoed.length < 14; i++) await new Promise((r) => setTimeout(r, 50));
  socket.destroy();
  assert.equal(echoed, '\x00\x01opaque bytes');
});

test('nothing on either loopback: the 502 names both refusals', async () => {
  const { status, body } = await get(via.nothing);
  assert.equal(status, 502);
  assert.match(body, /did not answer: connect ECONNREFUSED 127\.0\.0\.1:\d+; connect ECONNREFUSED ::1:\d+/);
});
