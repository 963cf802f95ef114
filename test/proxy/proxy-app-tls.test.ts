// An app that serves TLS itself (HTTPS with its own certificate for web.demo) behind a sidecar,
// called by a client outside the mesh during a migration: on a PERMISSIVE port its ClientHello
// names web.demo, not the sidecar, and reaches the app byte for byte (as Linkerd passes a foreign
// SNI through); on a STRICT port it is refused. Mesh clients still get mTLS: a peer sidecar's
// outbound (SNI = the identity's host name), and curl holding an SVID straight at the inbound by
// IP (no SNI) or by the identity's host name.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { createSelfSignedCertificate } from '../../src/testing/local-server-pki.ts';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

const run = promisify(execFile);
const WEB_IDENTITY_NAME = 'web.demo.serviceaccount.identity.cluster.local';

let dir: string;
let web: WorkloadFiles;
let emoji: WorkloadFiles;
let appCertPem: string;
let permissiveApp: HttpsServer;
let strictApp: HttpsServer;
let plainApp: HttpServer;
let sidecar: ProxyProcess;
let peer: ProxyProcess;
/** The sidecar's inbound listeners: the HTTPS app on PERMISSIVE and on STRICT, the HTTP app on PERMISSIVE. */
let permissivePort: number;
let strictPort: number;
let plainPort: number;

const portOf = (server: { address(): unknown }) => (server.address() as AddressInfo).port;

/** curl's answer and its verbose log (which shows the certificate it was served). */
async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '-v', '--max-time', '20', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const svid = () => ['--cert', emoji.certFile, '--key', emoji.keyFile];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-app-tls-'));
  const pki = await createTestPki(join(dir, 'pki'));
  web = await pki.workload('web', { ns: 'demo' });
  emoji = await pki.workload('emoji', { ns: 'demo' });
  // The app's own certificate, from no mesh CA: what an nginx in front of the app would serve.
  const appTls = await createSelfSignedCertificate(dir, 'web.demo', 'web.demo');
  appCertPem = appTls.certPem;
  const tls = { key: appTls.keyPem, cert: appCertPem };
  const answer = (name: string) => (request: { headers: Record<string, unknown> }, response: any) =>
    response.end(`${name} app, client ${request.headers['x-mutual-client-id'] ?? 'none'}\n`);
  permissiveApp = createHttpsServer(tls, answer('https'));
  strictApp = createHttpsServer(tls, answer('https'));
  plainApp = createHttpServer(answer('http'));
  await Promise.all(
    [permissiveApp, strictApp, plainApp].map((server) => once(server.listen(0, '127.0.0.1'), 'listening')),
  );
  sidecar = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--inbound', `127.0.0.1:0=${portOf(permissiveApp)}`],
    ...['--inbound', `127.0.0.1:0=${portOf(strictApp)}`],
    ...['--inbound', `127.0.0.1:0=${portOf(plainApp)}`],
    ...['--mode', 'PERMISSIVE', '--port-mode', `${portOf(strictApp)}=STRICT`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await sidecar.untilReady();
  [permissivePort, strictPort, plainPort] = sidecar.inbound.map((address) => address.port) as [
    number,
    number,
    number,
  ];
  // A meshed client of both: its outbound carries each to the sidecar's inbound over mTLS.
  peer = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--upstream', `127.0.0.1:0=${web.spiffeId}@127.0.0.1:${permissivePort}`],
    ...['--upstream', `127.0.0.1:0=${web.spiffeId}@127.0.0.1:${plainPort}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await peer.untilReady();
});

after(async () => {
  await Promise.all([sidecar?.stop(), peer?.stop()]);
  for (const server of [permissiveApp, strictApp, plainApp]) {
    server?.closeAllConnections();
    server?.close();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("PERMISSIVE: an unmeshed HTTPS client reaches the app's own TLS and sees the app's certificate", async () => {
  const answer = await curl([
    '-k',
    ...['--resolve', `web.demo:${permissivePort}:127.0.0.1`],
    `https://web.demo:${permissivePort}/`,
  ]);
  assert.equal(answer.code, 0, answer.stderr);
  assert.equal(answer.stdout, 'https app, client none\n');
  assert.match(answer.stderr, /subject: CN=web\.demo/);
  // Counted as a connection to the app that is not mTLS, with why.
  const metrics = await sidecar.metrics();
  assert.ok(
    metricValue(metrics, 'mutual_inbound_connections_total', {
      tls: 'no_identity',
      no_tls_reason: 'opaque_tls',
      port: String(portOf(permissiveApp)),
    }) >= 1,
    metrics,
  );
  assert.doesNotMatch(sidecar.output(), /inbound client refused|handshake failed/);
});

test('PERMISSIVE: openssl s_client naming web.demo gets the app certificate, not the SVID', async () => {
  const { stdout } = await run(
    'sh',
    [
      '-c',
      `echo | openssl s_client -connect 127.0.0.1:${permissivePort} -servername web.demo -showcerts 2>/dev/null`,
    ],
    { timeout: 20_000 },
  );
  const served = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(stdout)?.[0];
  assert.equal(served?.replace(/\s/g, ''), appCertPem.replace(/\s/g, ''));
});

test('STRICT: the same client is refused', async () => {
  const answer = await curl([
    '-k',
    ...['--resolve', `web.demo:${strictPort}:127.0.0.1`],
    `https://web.demo:${strictPort}/`,
  ]);
  assert.notEqual(answer.code, 0);
  assert.doesNotMatch(answer.stdout, /https app/);
});

test("a peer sidecar's outbound still gets mTLS and the client id header", async () => {
  const [httpsOutbound, plainOutbound] = peer.outbound;
  const plain = await curl([`http://127.0.0.1:${plainOutbound!.port}/`]);
  assert.equal(plain.stdout, `http app, client ${emoji.spiffeId}\n`);
  // The app's own TLS, carried inside the sidecars' mTLS.
  const https = await curl([
    '-k',
    ...['--resolve', `web.demo:${httpsOutbound!.port}:127.0.0.1`],
    `https://web.demo:${httpsOutbound!.port}/`,
  ]);
  assert.equal(https.code, 0, https.stderr);
  assert.equal(https.stdout, 'https app, client none\n');
  assert.match(https.stderr, /subject: CN=web\.demo/);
  const metrics = await sidecar.metrics();
  for (const app of [plainApp, permissiveApp]) {
    assert.ok(
      metricValue(metrics, 'mutual_inbound_connections_total', {
        tls: 'true',
        client_id: emoji.spiffeId,
        port: String(portOf(app)),
      }) +
        metricValue(metrics, 'mutual_inbound_http_requests_total', {
          tls: 'true',
          client_id: emoji.spiffeId,
          port: String(portOf(app)),
        }) >=
        1,
      metrics,
    );
  }
});

test('curl holding an SVID, straight at the PERMISSIVE inbound by IP or by the identity name, is terminated', async () => {
  const byIp = await curl(['-k', ...svid(), `https://127.0.0.1:${plainPort}/`]);
  assert.equal(byIp.stdout, `http app, client ${emoji.spiffeId}\n`, byIp.stderr);
  const byName = await curl([
    '-k',
    ...svid(),
    ...['--resolve', `${WEB_IDENTITY_NAME}:${plainPort}:127.0.0.1`],
    `https://${WEB_IDENTITY_NAME}:${plainPort}/`,
  ]);
  assert.equal(byName.stdout, `http app, client ${emoji.spiffeId}\n`, byName.stderr);
});
