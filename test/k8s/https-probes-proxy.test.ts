// HTTPS kubelet probes under STRICT, with real processes: the injector's probe rewrite turns an app
// container's httpGet probes with scheme HTTPS into plain HTTP probes of the proxy's admin port and
// MUTUAL_PROXY_APP_PROBES; a real `mutual proxy run` in STRICT mode answers them by making the GET
// over TLS to a real HTTPS app on 127.0.0.1 (node:https, a self-signed certificate made with the
// openssl CLI) as the kubelet makes it: the certificate not verified, no client certificate, no
// SNI, HTTP/1.1. A plain HTTP app on the port, one whose handshake hangs and one not listening fail
// the probe with 503 and say why; the kubelet's own HTTPS probe through the STRICT inbound fails.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { rewriteAppProbes } from '../../src/k8s/index.ts';
import { createSelfSignedCertificate } from '../../src/testing/local-server-pki.ts';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
} from '../../src/testing/mesh-pki.ts';

let dir: string;
let pki: TestPki;
let proxy: ProxyProcess;
let appStatus = 200;
const seen: { url: string; headers: Record<string, unknown>; tls: Record<string, unknown> }[] = [];
let app: Server;
// A plain HTTP app on a port the probe says is HTTPS.
const plainApp = createHttpServer((_request, response) => response.end('plain\n'));
// Accepts connections and never answers the ClientHello.
const held: Socket[] = [];
const hangingApp = createTcpServer((socket) => {
  held.push(socket);
  socket.on('error', () => {});
});
const portOf = (server: Server) => (server.address() as AddressInfo).port;
const listen = (server: Server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await listen(server);
  const free = portOf(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return free;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-https-probes-'));
  pki = await createTestPki(join(dir, 'pki'));
  // A self-signed certificate for a name the probe never asks for: the kubelet verifies nothing.
  const appTls = await createSelfSignedCertificate(dir, 'app.invalid');
  app = createHttpsServer(
    {
      key: appTls.keyPem,
      cert: appTls.certPem,
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2', 'http/1.1'],
    },
    (request, response) => {
      const socket = request.socket as import('node:tls').TLSSocket;
      seen.push({
        url: request.url ?? '',
        headers: request.headers,
        tls: {
          servername: socket.servername,
          alpn: socket.alpnProtocol,
          clientCertificate: Object.keys(socket.getPeerCertificate()).length > 0,
          httpVersion: request.httpVersion,
        },
      });
      response.writeHead(appStatus, { 'content-type': 'text/plain' }).end('app\n');
    },
  );
  await Promise.all([listen(app), listen(plainApp), listen(hangingApp)]);
  const down = await closedPort();
  const https = (port: number | string, path = '/healthz', timeoutSeconds = 2) => ({
    httpGet: { path, port, scheme: 'HTTPS' },
    timeoutSeconds,
  });
  // The containers as a user writes them; the injector rewrites them and hands the originals over.
  const rewrite = rewriteAppProbes(
    [
      {
        name: 'web',
        ports: [{ name: 'https', containerPort: portOf(app) }],
        livenessProbe: {
          httpGet: {
            path: '/livez?full=1',
            port: 'https',
            scheme: 'HTTPS',
            httpHeaders: [
              { name: 'X-Probe', value: 'kubelet' },
              { name: 'Host', value: 'web.example' },
            ],
          },
        },
        readinessProbe: https(portOf(app), '/readyz'),
      },
      {
        name: 'wrong',
        livenessProbe: https(portOf(plainApp)),
        readinessProbe: https(portOf(hangingApp), '/healthz', 1),
        startupProbe: https(down),
      },
    ],
    true,
  );
  assert.equal(Object.keys(rewrite.probes).length, 5);
  assert.deepEqual(rewrite.keptProbePaths, []);
  assert.deepEqual(rewrite.containers[0]?.livenessProbe?.httpGet, {
    path: '/app-health/web/livez',
    port: 4191,
    scheme: 'HTTP',
  });
  const workload = await pki.workload('web');
  proxy = await startProxyProcess(
    [
      ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
      ...['--inbound', `127.0.0.1:0=${portOf(app)}`, '--mode', 'STRICT'],
      ...['--admin-listen', '127.0.0.1:0', '--drain-timeout', '1s'],
    ],
    { MUTUAL_PROXY_APP_PROBES: JSON.stringify(rewrite.probes) },
  );
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  for (const socket of held) socket.destroy();
  for (const server of [app, plainApp, hangingApp]) {
    if (server === undefined) continue;
    (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    server.close();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function probe(path: string) {
  const response = await fetch(`${proxy.adminUrl}${path}`, { headers: { 'user-agent': 'kube-probe/1.31' } });
  return { status: response.status, body: (await response.text()).trim() };
}

test("an HTTPS probe gets the app's status over TLS as the kubelet's: 200, then 500 passed through; certificate unverified, no client certificate, no SNI, HTTP/1.1", async () => {
  seen.length = 0;
  const at = `https://127.0.0.1:${portOf(app)}`;
  assert.deepEqual(await probe('/app-health/web/readyz'), { status: 200, body: `${at}/readyz answered 200` });
  assert.deepEqual(await probe('/app-health/web/livez'), {
    status: 200,
    body: `${at}/livez?full=1 answered 200`,
  });
  assert.equal(seen.at(-1)?.url, '/livez?full=1', 'the named port resolved, the query kept');
  assert.equal(seen.at(-1)?.headers['x-probe'], 'kubelet');
  assert.equal(seen.at(-1)?.headers['user-agent'], 'kube-probe/1.31');
  assert.equal(seen.at(-1)?.headers.host, 'web.example');
  // A Host header does not become the SNI: the kubelet dials an IP address and sends none.
  assert.deepEqual(seen.at(-1)?.tls, {
    servername: false,
    alpn: 'http/1.1',
    clientCertificate: false,
    httpVersion: '1.1',
  });

  appStatus = 500;
  try {
    assert.deepEqual(await probe('/app-health/web/readyz'), {
      status: 500,
      body: `${at}/readyz answered 500`,
    });
  } finally {
    appStatus = 200;
  }
  assert.equal((await probe('/app-health/web/readyz')).status, 200);
});

test('an HTTPS probe fails with 503 and says why: plain HTTP on the port, a handshake that hangs, nothing listening', async () => {
  const plain = await probe('/app-health/wrong/livez');
  assert.equal(plain.status, 503);
  assert.equal(
    plain.body,
    `https://127.0.0.1:${portOf(plainApp)}/healthz did not answer the TLS handshake in TLS (wrong version number): the probe's scheme is HTTPS, and the app seems to serve plain HTTP on that port (scheme: HTTP probes it so)`,
  );
  assert.deepEqual(await probe('/app-health/wrong/readyz'), {
    status: 503,
    body: `https://127.0.0.1:${portOf(hangingApp)}/healthz did not complete the TLS handshake within 1000 ms`,
  });
  const down = await probe('/app-health/wrong/startupz');
  assert.equal(down.status, 503);
  assert.match(down.body, /\/healthz not reachable: ECONNREFUSED$/);
});

test("without the rewrite the kubelet's HTTPS probe through the STRICT inbound fails: the proxy takes it for mesh mTLS", async () => {
  // The inbound forwards to the HTTPS app: only the proxy stands in the way. The kubelet's request:
  // by IP (no SNI), no client certificate, the certificate not verified.
  const inbound = proxy.inbound[0]!;
  const outcome = await new Promise<string>((resolve) => {
    const outgoing = httpsRequest(
      {
        host: inbound.host,
        port: inbound.port,
        path: '/readyz',
        agent: false,
        rejectUnauthorized: false,
        servername: '',
      },
      (response) => {
        response.resume();
        resolve(`answered ${response.statusCode}`);
      },
    );
    outgoing.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    outgoing.end();
  });
  assert.doesNotMatch(outcome, /^answered/);
});
