// Rotation under load: proxies certified by a real identity service with 6-second certificates
// renew again and again while requests flow through them (HTTP/1 over the pool, HTTP/2 streams
// over the multiplexed connection); not one request fails, and neither a long-lived spliced
// connection nor a long-lived HTTP/2 connection opened before the first renewal is dropped.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request } from 'node:http';
import { connect as connectHttp2, createServer as createHttp2Server } from 'node:http2';
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { metricValue, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';
import {
  createCa,
  type IdentityServiceProcess,
  mintJoinToken,
  startIdentityService,
} from '../e2e/run-mutual.ts';

let dir: string;
let identity: IdentityServiceProcess;
const proxies: ProxyProcess[] = [];
const app = createServer((_request, response) => response.end('ok'));
const echo = createTcpServer((socket) => socket.pipe(socket));
const h2App = createHttp2Server((_request, response) => response.end('h2 ok'));

async function token(ns: string, sa: string): Promise<string> {
  const file = join(dir, `${sa}.token`);
  await writeFile(file, await mintJoinToken(join(dir, 'state'), ns, sa), { mode: 0o600 });
  return file;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-rotation-'));
  await createCa(join(dir, 'ca'));
  identity = await startIdentityService(join(dir, 'ca'), join(dir, 'state'), [
    '--lifetime',
    '6s',
    '--skew',
    '1s',
  ]);
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => h2App.listen(0, '127.0.0.1', resolve));
  const identityFlags = (sa: string, tokenFile: string) => [
    ...['--identity-url', identity.apiUrl.toString(), '--token-file', tokenFile],
    ...[
      '--spiffe-id',
      `spiffe://cluster.local/ns/demo/sa/${sa}`,
      '--identity-bundle',
      join(dir, 'ca', 'bundle.pem'),
    ],
    ...['--admin-listen', '127.0.0.1:0'],
  ];
  const server = await startProxyProcess([
    ...identityFlags('emoji', await token('demo', 'emoji')),
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`],
    ...['--inbound', `127.0.0.1:0=${(echo.address() as AddressInfo).port}`, '--mode', 'STRICT'],
    ...['--inbound', `127.0.0.1:0=${(h2App.address() as AddressInfo).port}`],
  ]);
  proxies.push(server);
  const client = await startProxyProcess([
    ...identityFlags('web', await token('demo', 'web')),
    ...[
      '--upstream',
      `127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:${server.inbound[0]!.port}`,
    ],
    ...[
      '--upstream',
      `127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:${server.inbound[1]!.port}`,
    ],
    ...[
      '--upstream',
      `127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:${server.inbound[2]!.port}`,
    ],
  ]);
  proxies.push(client);
  await Promise.all(proxies.map((proxy) => proxy.untilReady()));
});

after(async () => {
  await Promise.all(proxies.map((proxy) => proxy.stop()));
  await identity?.stop();
  app.close();
  echo.close();
  h2App.close();
  await rm(dir, { recursive: true, force: true });
});

test('certificates renew repeatedly under load with zero failed requests and no dropped connection', async () => {
  const [, client] = proxies;
  const port = client!.outbound[0]!.port;
  const serial = async () => {
    const body = (await (await fetch(`${proxies[0]!.adminUrl}/identity`)).json()) as { notAfter: string };
    return body.notAfter;
  };
  const firstNotAfter = await serial();

  // A long-lived connection, opened before any renewal, echoing every 200 ms throughout.
  const longLived = connect(client!.outbound[1]!.port, '127.0.0.1');
  let echoed = '';
  longLived.on('data', (chunk) => {
    echoed += chunk;
  });
  let longLivedClosed = false;
  longLived.on('close', () => {
    longLivedClosed = true;
  });
  let ticks = 0;
  const ticker = setInterval(() => longLived.write(`tick${ticks++};`), 200);

  // Load: 4 workers on keep-alive connections plus new connections, for 14 s (two renewals or more).
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });
  const get = (agent: Agent | false) =>
    new Promise<number>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  let ok = 0;
  let failed = 0;
  const deadline = Date.now() + 14_000;
  // And HTTP/2: one app connection for the whole run, two streams at a time.
  const h2 = connectHttp2(`http://127.0.0.1:${client!.outbound[2]!.port}`);
  h2.on('error', () => {});
  let h2Closed = false;
  h2.once('close', () => {
    h2Closed = true;
  });
  const h2Get = () =>
    new Promise<number>((resolve) => {
      const stream = h2.request({ ':path': '/' });
      let status = 0;
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      stream.on('error', () => {});
      stream.resume();
      stream.on('close', () => resolve(stream.rstCode === 0 ? status : 0));
    });
  let h2Ok = 0;
  let h2Failed = 0;
  await Promise.all([
    ...[keepAlive, keepAlive, keepAlive, false as const].map(async (agent) => {
      while (Date.now() < deadline) {
        if ((await get(agent)) === 200) ok++;
        else failed++;
      }
    }),
    ...[1, 2].map(async () => {
      while (Date.now() < deadline) {
        if ((await h2Get()) === 200) h2Ok++;
        else h2Failed++;
      }
    }),
  ]);
  clearInterval(ticker);
  keepAlive.destroy();
  const h2WasDropped = h2Closed;
  h2.close();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const wasDropped = longLivedClosed;
  longLived.end();

  assert.equal(failed, 0, `${failed} of ${ok + failed} requests failed`);
  assert.ok(ok > 100, `only ${ok} requests went through`);
  assert.equal(h2Failed, 0, `${h2Failed} of ${h2Ok + h2Failed} HTTP/2 requests failed`);
  assert.ok(h2Ok > 50, `only ${h2Ok} HTTP/2 requests went through`);
  assert.equal(h2WasDropped, false, 'the long-lived HTTP/2 connection was dropped');
  assert.notEqual(await serial(), firstNotAfter, 'the server certificate was never renewed');
  for (const proxy of proxies) {
    const renewals = metricValue(await proxy.metrics(), 'mutual_proxy_certificate_renewals_total', {
      result: 'success',
    });
    assert.ok(renewals >= 3, `only ${renewals} certificates in 14 s`);
  }
  assert.equal(wasDropped, false, 'the long-lived connection was dropped');
  assert.equal(echoed, Array.from({ length: ticks }, (_, i) => `tick${i};`).join(''));
});
