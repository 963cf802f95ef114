// An app's HTTPS and gRPC livenessProbe (mesh.yaml) as `up --isolation netns` makes it: through
// the pod's sidecar. The probe parsed from a mesh file becomes the sidecar's MUTUAL_PROXY_APP_PROBES
// (sidecarProbeEnv), a real `mutual proxy run` in STRICT mode is started with it, and up's watcher
// (appLiveness, in its netns shape) asks that sidecar's admin port: a real HTTPS app on a
// self-signed certificate passes, then fails once it stops listening, with the sidecar's reason;
// a gRPC probe of a port where nothing listens fails naming the health check. Without the network
// namespace itself (mesh-netns tests cover the pod); the sidecar and the apps are real processes.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { appLiveness, sidecarProbeEnv } from '../../src/mesh/app-liveness.ts';
import { parseMeshConfig } from '../../src/mesh/mesh-config.ts';
import type { ServicePlan } from '../../src/mesh/plan.ts';
import { createSelfSignedCertificate } from '../../src/testing/local-server-pki.ts';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
} from '../../src/testing/mesh-pki.ts';

let dir: string;
let pki: TestPki;
let app: ReturnType<typeof createServer>;
let appPort: number;
let downPort: number;
const proxies: ProxyProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-app-liveness-sidecar-'));
  pki = await createTestPki(join(dir, 'pki'));
  const appTls = await createSelfSignedCertificate(dir, 'secure.invalid');
  app = createServer({ key: appTls.keyPem, cert: appTls.certPem }, (request, response) =>
    response.writeHead(request.url === '/healthz' ? 200 : 404).end(),
  );
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appPort = (app.address() as AddressInfo).port;
  const closed = createTcpServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  downPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
});

after(async () => {
  for (const proxy of proxies) await proxy.stop();
  if (app?.listening) {
    app.closeAllConnections();
    app.close();
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The service's probe as mesh.yaml gives it, its sidecar started with what up hands it, and up's watcher of it. */
async function probedThroughSidecar(name: string, livenessProbe: string) {
  const [service] = parseMeshConfig(
    `services:\n  - name: ${name}\n    command: [x]\n    ports: [${appPort}]\n    livenessProbe: ${livenessProbe}\n`,
    join(dir, 'mesh.yaml'),
  ).services;
  const workload = await pki.workload(name);
  const proxy = await startProxyProcess(
    [
      ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
      ...['--inbound', `127.0.0.1:0=${appPort}`, '--mode', 'STRICT'],
      ...['--admin-listen', '127.0.0.1:0', '--drain-timeout', '1s'],
    ],
    sidecarProbeEnv(name, service!.livenessProbe!),
  );
  proxies.push(proxy);
  await proxy.untilReady();
  const plan = {
    service: service!,
    ports: [{ port: appPort, protocol: 'http', appPort, inboundPort: undefined }],
    adminUrl: proxy.adminUrl,
    pod: { netns: `mutual-${name}`, address: '198.18.0.2', proxyGid: 0 },
  } as unknown as ServicePlan;
  return appLiveness(plan)!.target;
}

test('netns: an HTTPS livenessProbe through the sidecar passes on a self-signed certificate, and fails with the sidecar’s reason once the app stops listening', async () => {
  const target = await probedThroughSidecar('secure', '{ httpGet: { path: /healthz, scheme: HTTPS } }');
  assert.equal(
    target.failed,
    `failed its livenessProbe (GET https://127.0.0.1:${appPort}/healthz in mutual-secure)`,
  );
  assert.equal(await target.probe(1000), undefined);
  app.closeAllConnections();
  await new Promise<void>((resolve) => app.close(() => resolve()));
  assert.equal(await target.probe(1000), `https://127.0.0.1:${appPort}/healthz not reachable: ECONNREFUSED`);
});

test('netns: a grpc livenessProbe through the sidecar names the health check and fails when nothing answers it', async () => {
  const target = await probedThroughSidecar(
    'orders',
    `{ grpc: { port: ${downPort}, service: orders.v1.Orders } }`,
  );
  assert.equal(
    target.failed,
    `failed its livenessProbe (gRPC health check of "orders.v1.Orders" at 127.0.0.1:${downPort} in mutual-orders)`,
  );
  assert.equal(
    await target.probe(1000),
    `127.0.0.1:${downPort} (gRPC health of "orders.v1.Orders"): not reachable: ECONNREFUSED`,
  );
});
