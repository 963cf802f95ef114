// istio.io's AuthorizationPolicy examples that use what Mutual cannot enforce (JWT request
// principals, CUSTOM, remoteIpBlocks), applied as security.istio.io objects in a cluster (the fake
// API server) and served by the destination service to a real proxy with --policy-url. Istio
// accepts them, so Mutual's validator does not refuse them by default; skipping them would widen
// access (require-jwt was emoji's only ALLOW policy: everyone got in). Each is enforced as a
// stricter stand-in instead, logged and counted as `unsupported`.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DestinationService } from '../../src/destination/index.ts';
import { kubeconfigConnection } from '../../src/k8s/kube-client/index.ts';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import { startService } from '../destination/destination-fixture.ts';
import { type FakeKubeApi, startFakeKubeApi } from '../destination/fake-kube-api.ts';
import { authorizationPolicy, policyPath } from '../destination/policy-objects.ts';

const ISTIO_AP = policyPath('security.istio.io/v1', 'AuthorizationPolicy');
const EMOJI = { matchLabels: { app: 'emoji' } };

let dir: string;
let api: FakeKubeApi;
let service: DestinationService & { logs: string[] };
let app: Server;
const proxies: ProxyProcess[] = [];
let webUrl: string;

const files = (workload: WorkloadFiles) => [
  ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-istio-unsupported-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const [emoji, web, own] = await Promise.all([
    pki.workload('emoji'),
    pki.workload('web'),
    pki.workload('destination', { ns: 'mutual-system', sa: 'destination' }),
  ]);
  api = await startFakeKubeApi();
  service = await startService(own, { kubernetes: await kubeconfigConnection(await api.kubeconfig()) });
  app = createServer((request, response) => response.end(`ok ${request.url}`));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const server = await startProxyProcess([
    ...files(emoji),
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--label', 'app=emoji'],
    ...['--policy-url', service.apiUrl, '--admin-listen', '127.0.0.1:0'],
  ]);
  proxies.push(server);
  const client = await startProxyProcess([
    ...files(web),
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  proxies.push(client);
  webUrl = `http://127.0.0.1:${client.outbound[0]!.port}`;
  for (const proxy of proxies) await proxy.untilReady();
});

after(async () => {
  await Promise.all(proxies.map((proxy) => proxy.stop()));
  await service?.close();
  await api?.close();
  app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function call(path: string): Promise<{ status: number; deniedBy: string | null }> {
  const answer = await fetch(`${webUrl}${path}`);
  await answer.arrayBuffer();
  return { status: answer.status, deniedBy: answer.headers.get('x-mutual-denied-by') };
}

test("require-jwt (ALLOW requestPrincipals), emoji's only ALLOW policy, allows nothing rather than everything", async () => {
  assert.equal((await call('/headers')).status, 200, 'no policy yet');
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'require-jwt', {
      selector: EMOJI,
      action: 'ALLOW',
      rules: [
        { from: [{ source: { requestPrincipals: ['testing@secure.istio.io/testing@secure.istio.io'] } }] },
      ],
    }),
  );
  await waitUntil(async () => (await call('/headers')).status === 403, 'require-jwt to apply');
  assert.deepEqual(await call('/headers'), { status: 403, deniedBy: 'demo/require-jwt' });
  assert.ok(
    service.logs.some(
      (line) =>
        line.includes('a stricter stand-in applies') &&
        line.includes('demo/require-jwt') &&
        line.includes('requestPrincipals is not supported'),
    ),
    service.logs.join('\n'),
  );
  const metrics = await (await fetch(`${service.adminUrl}/metrics`)).text();
  assert.equal(metricValue(metrics, 'mutual_destination_policies_skipped', { reason: 'unsupported' }), 1);
  api.remove(ISTIO_AP, 'demo', 'require-jwt');
  await waitUntil(async () => (await call('/headers')).status === 200, 'require-jwt to go');
});

test('a DENY with notRequestPrincipals, and CUSTOM, still deny what they name', async () => {
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'deny-admin-without-jwt', {
      selector: EMOJI,
      action: 'DENY',
      rules: [
        { from: [{ source: { notRequestPrincipals: ['*'] } }], to: [{ operation: { paths: ['/admin/*'] } }] },
      ],
    }),
  );
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'ext-authz', {
      selector: EMOJI,
      action: 'CUSTOM',
      provider: { name: 'sample-ext-authz-grpc' },
      rules: [{ to: [{ operation: { paths: ['/headers'] } }] }],
    }),
  );
  await waitUntil(async () => (await call('/headers')).status === 403, 'the CUSTOM stand-in to apply');
  assert.deepEqual(await call('/headers'), { status: 403, deniedBy: 'demo/ext-authz' });
  assert.deepEqual(await call('/admin/users'), { status: 403, deniedBy: 'demo/deny-admin-without-jwt' });
  assert.deepEqual(await call('/public/x'), { status: 200, deniedBy: null });
});

test('a DENY with istio.io/dry-run: "true" is not enforced (as in Istio), and the log says why', async () => {
  const object = authorizationPolicy('demo', 'deny-ip-dry-run', {
    selector: EMOJI,
    action: 'DENY',
    rules: [{ to: [{ operation: { paths: ['/ip'] } }] }],
  });
  (object.metadata.annotations as Record<string, string>)['istio.io/dry-run'] = 'true';
  api.add(ISTIO_AP, object);
  // Added after it: once this one applies, the proxy's set has seen the dry-run one too.
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'deny-marker', {
      selector: EMOJI,
      action: 'DENY',
      rules: [{ to: [{ operation: { paths: ['/marker'] } }] }],
    }),
  );
  await waitUntil(async () => (await call('/marker')).status === 403, 'the marker DENY to apply');
  assert.ok(
    service.logs.some(
      (line) =>
        line.includes('policy object skipped') &&
        line.includes('demo/deny-ip-dry-run') &&
        line.includes('istio.io/dry-run'),
    ),
  );
  assert.deepEqual(await call('/ip'), { status: 200, deniedBy: null });
});

test('an ALLOW with a "*" in the middle of a path, which Istio accepts, is served, not skipped', async () => {
  assert.deepEqual(await call('/public/x'), { status: 200, deniedBy: null });
  // Istio reads "/api/*/users" literally: emoji's only ALLOW policy then allows almost nothing.
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'api-users', {
      selector: EMOJI,
      action: 'ALLOW',
      rules: [{ to: [{ operation: { paths: ['/api/*/users'] } }] }],
    }),
  );
  await waitUntil(async () => (await call('/public/x')).status === 403, 'api-users to apply');
  assert.deepEqual(await call('/api/v1/users'), { status: 403, deniedBy: 'demo/api-users' });
  assert.deepEqual(await call('/api/*/users'), { status: 200, deniedBy: null });
});

test('an ALLOW Mutual cannot read (port "0", which Istio\'s validation lets through), emoji\'s only ALLOW policy, allows nothing rather than everything', async () => {
  api.remove(ISTIO_AP, 'demo', 'api-users');
  await waitUntil(async () => (await call('/public/x')).status === 200, 'api-users to go');
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'odd-port', {
      selector: EMOJI,
      action: 'ALLOW',
      rules: [{ to: [{ operation: { ports: ['0'] } }] }],
    }),
  );
  // Skipped, as before, emoji would have no ALLOW policy at all and let everyone in.
  await waitUntil(async () => (await call('/public/x')).status === 403, 'the stand-in to apply');
  assert.deepEqual(await call('/public/x'), { status: 403, deniedBy: 'demo/odd-port' });
  assert.ok(
    service.logs.some(
      (line) => line.includes('ALLOW policy object is invalid') && line.includes('demo/odd-port'),
    ),
    service.logs.join('\n'),
  );
  const metrics = await (await fetch(`${service.adminUrl}/metrics`)).text();
  assert.equal(metricValue(metrics, 'mutual_destination_policies_skipped', { reason: 'fail_closed' }), 1);
  api.remove(ISTIO_AP, 'demo', 'odd-port');
  await waitUntil(async () => (await call('/public/x')).status === 200, 'odd-port to go');
});
