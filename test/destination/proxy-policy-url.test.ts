// Cluster policies reaching real proxies: `mutual proxy run --policy-url` against the destination
// service, which lists and watches the policy kinds of the fake API server. An AuthorizationPolicy
// ADDED through the watch makes emoji's proxy answer attacker with 403 `RBAC: access denied` (an
// invalid deny-all object alongside is skipped, so web still gets in); DELETED lets attacker in
// again. A proxy whose service is unreachable before its first set is not ready and refuses;
// once the service goes away, the last good set stays in force.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type DestinationService, POLICY_COLLECTIONS } from '../../src/destination/index.ts';
import { kubeconfigConnection } from '../../src/k8s/kube-client/index.ts';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import { startService } from './destination-fixture.ts';
import { type FakeKubeApi, startFakeKubeApi } from './fake-kube-api.ts';
import { authorizationPolicy, policyPath } from './policy-objects.ts';

const MUTUAL_AP = policyPath('security.mutual.dev/v1', 'AuthorizationPolicy');

let dir: string;
let api: FakeKubeApi;
let service: (DestinationService & { logs: string[] }) | undefined;
let app: Server;
let emojiProxy: ProxyProcess;
let orphanProxy: ProxyProcess;
const proxies: ProxyProcess[] = [];
let webUrl: string;
let attackerUrl: string;
let webToOrphanUrl: string;

const files = (workload: WorkloadFiles) => [
  ...['--cert', workload.certFile, '--key', workload.keyFile, '--bundle', workload.bundleFile],
];

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createTcpServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-proxy-policy-url-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const [emoji, web, attacker, own] = await Promise.all([
    pki.workload('emoji'),
    pki.workload('web'),
    pki.workload('attacker'),
    pki.workload('destination', { ns: 'mutual-system', sa: 'destination' }),
  ]);
  api = await startFakeKubeApi();
  for (const entry of POLICY_COLLECTIONS)
    if (entry.apiVersion.startsWith('security.istio.io/')) api.setAbsent(entry.path, true);
  service = await startService(own, { kubernetes: await kubeconfigConnection(await api.kubeconfig()) });
  app = createServer((request, response) => response.end(`ok ${request.url}`));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  const serverArgs = (policyUrl: string) => [
    ...files(emoji),
    ...['--inbound', `127.0.0.1:0=${appPort}`, '--policy-url', policyUrl, '--label', 'app=emoji'],
    ...['--admin-listen', '127.0.0.1:0'],
  ];
  emojiProxy = await startProxyProcess(serverArgs(service.apiUrl));
  orphanProxy = await startProxyProcess(serverArgs(`https://127.0.0.1:${await closedPort()}`));
  proxies.push(emojiProxy, orphanProxy);
  const upstream = (target: ProxyProcess) =>
    `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${target.inbound[0]!.port}`;
  for (const [caller, target] of [
    [web, emojiProxy],
    [attacker, emojiProxy],
    [web, orphanProxy],
  ] as const) {
    proxies.push(
      await startProxyProcess([
        ...files(caller),
        ...['--upstream', upstream(target), '--admin-listen', '127.0.0.1:0'],
      ]),
    );
  }
  webUrl = `http://127.0.0.1:${proxies[2]!.outbound[0]!.port}`;
  attackerUrl = `http://127.0.0.1:${proxies[3]!.outbound[0]!.port}`;
  webToOrphanUrl = `http://127.0.0.1:${proxies[4]!.outbound[0]!.port}`;
  for (const proxy of [emojiProxy, ...proxies.slice(2)]) await proxy.untilReady();
});

after(async () => {
  await Promise.all(proxies.map((proxy) => proxy.stop()));
  await service?.close();
  await api?.close();
  app?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const status = async (url: string) => (await fetch(url)).status;

test('an AuthorizationPolicy ADDED in the cluster denies attacker with 403; DELETED lets it in again', async () => {
  // No policies in demo yet: both callers get in.
  assert.equal(await status(`${webUrl}/emoji`), 200);
  assert.equal(await status(`${attackerUrl}/emoji`), 200);

  api.add(
    MUTUAL_AP,
    authorizationPolicy('demo', 'emoji-callers', {
      selector: { matchLabels: { app: 'emoji' } },
      action: 'ALLOW',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/web'] } }] }],
    }),
  );
  // Invalid (a misspelt field), and a deny-all if it were applied: skipped, the valid one applies.
  api.add(MUTUAL_AP, authorizationPolicy('demo', 'broken', { action: 'DENY', rulez: [{}] }));
  await waitUntil(async () => (await status(`${attackerUrl}/emoji`)) === 403, 'the ADDED policy to apply');
  const denied = await fetch(`${attackerUrl}/emoji`);
  assert.equal(denied.status, 403);
  assert.equal(await denied.text(), 'RBAC: access denied');
  assert.equal(denied.headers.get('x-mutual-denied-by'), 'demo/emoji-callers');
  const allowed = await fetch(`${webUrl}/emoji`);
  assert.equal(allowed.status, 200, 'the invalid deny-all object was skipped');
  assert.equal(await allowed.text(), 'ok /emoji');
  const serviceMetrics = await (await fetch(`${service!.adminUrl}/metrics`)).text();
  assert.equal(metricValue(serviceMetrics, 'mutual_destination_policies_skipped', { reason: 'invalid' }), 1);
  assert.match(emojiProxy.output(), /policies received.*skippedByService.*AuthorizationPolicy demo\/broken/);

  api.remove(MUTUAL_AP, 'demo', 'emoji-callers');
  await waitUntil(
    async () => (await status(`${attackerUrl}/emoji`)) === 200,
    'the DELETED policy to stop applying',
  );
  assert.ok(
    metricValue(await emojiProxy.metrics(), 'mutual_proxy_policy_updates_total', { result: 'applied' }) >= 3,
  );
});

test('before its first policy set a proxy is not ready and refuses inbound traffic', async () => {
  const ready = await fetch(`${orphanProxy.adminUrl}/ready`);
  assert.equal(ready.status, 503);
  assert.match(await ready.text(), /no policies yet: MUTUAL_DESTINATION_POLICIES_UNAVAILABLE/);
  const refused = await fetch(`${webToOrphanUrl}/emoji`);
  assert.equal(refused.status, 403);
  assert.equal(refused.headers.get('x-mutual-denied-by'), '(policies not received yet)');
  assert.match(orphanProxy.output(), /inbound traffic is refused until the first policy set/);
});

test('with the service gone, the last good set stays in force', async () => {
  api.add(
    MUTUAL_AP,
    authorizationPolicy('demo', 'deny-attacker', {
      action: 'DENY',
      rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/attacker'] } }] }],
    }),
  );
  await waitUntil(async () => (await status(`${attackerUrl}/emoji`)) === 403, 'the deny to apply');
  await service!.close();
  service = undefined;
  await waitUntil(
    async () => emojiProxy.output().includes('the last good set stays in force'),
    'the proxy to notice the service is gone',
  );
  assert.equal(await status(`${attackerUrl}/emoji`), 403);
  assert.equal(await status(`${webUrl}/emoji`), 200);
  assert.equal((await fetch(`${emojiProxy.adminUrl}/ready`)).status, 200, 'still ready on the last good set');
});
