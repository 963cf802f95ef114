// Policy enforced by real proxies: an ALLOW for sa/web lets web in and keeps sa/attacker out with
// 403 naming the policy; a change on disk applies to the next request; probes stay green under
// `spec: {}` (deny all).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

const ALLOW_WEB = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: emoji-callers, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"] } }]
`;
const DENY_ALL = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: emoji-callers, namespace: demo }
spec: {}
`;

describe('policy through real proxies', () => {
  let dir: string;
  let policyDir: string;
  let app: Server;
  const proxies: ProxyProcess[] = [];
  let webUrl: string;
  let attackerUrl: string;
  let server: ProxyProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-policy-'));
    policyDir = join(dir, 'policies');
    await mkdir(policyDir);
    await writeFile(join(policyDir, 'emoji.yaml'), ALLOW_WEB);
    const pki = await createTestPki(join(dir, 'pki'));
    const [emoji, web, attacker] = await Promise.all(
      ['emoji', 'web', 'attacker'].map((name) => pki.workload(name)),
    );
    app = createServer((request, response) => response.end(`ok ${request.url}`));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const appPort = (app.address() as AddressInfo).port;
    server = await startProxyProcess([
      ...['--cert', emoji!.certFile, '--key', emoji!.keyFile, '--bundle', emoji!.bundleFile],
      ...['--inbound', `127.0.0.1:0=${appPort}`, '--policy-dir', policyDir, '--label', 'app=emoji'],
      ...['--probe-path', '/healthz', '--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(server);
    for (const caller of [web!, attacker!]) {
      const proxy = await startProxyProcess([
        ...['--cert', caller.certFile, '--key', caller.keyFile, '--bundle', caller.bundleFile],
        ...['--upstream', `127.0.0.1:0=${emoji!.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
        ...['--admin-listen', '127.0.0.1:0'],
      ]);
      proxies.push(proxy);
    }
    webUrl = `http://127.0.0.1:${proxies[1]!.outbound[0]!.port}`;
    attackerUrl = `http://127.0.0.1:${proxies[2]!.outbound[0]!.port}`;
    for (const proxy of proxies) await proxy.untilReady();
  });

  after(async () => {
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('web is allowed; attacker gets 403 naming the deciding policy', async () => {
    const allowed = await fetch(`${webUrl}/emoji`);
    assert.equal(allowed.status, 200);
    assert.equal(await allowed.text(), 'ok /emoji');
    const denied = await fetch(`${attackerUrl}/emoji`);
    assert.equal(denied.status, 403);
    assert.equal(await denied.text(), 'RBAC: access denied');
    assert.equal(denied.headers.get('x-mutual-denied-by'), 'demo/emoji-callers');
  });

  test('a policy change on disk applies to the next request; probe paths stay open under spec: {}', async () => {
    await writeFile(join(policyDir, 'emoji.yaml'), DENY_ALL);
    await waitUntil(async () => (await fetch(`${webUrl}/emoji`)).status === 403, 'deny-all to take effect');
    assert.equal((await fetch(`${webUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${attackerUrl}/healthz`)).status, 200);
    await writeFile(join(policyDir, 'emoji.yaml'), ALLOW_WEB);
    await waitUntil(async () => (await fetch(`${webUrl}/emoji`)).status === 200, 'allow to come back');
    const denials = metricValue(await server.metrics(), 'mutual_authorization_decisions_total', {
      decision: 'deny',
      policy: 'demo/emoji-callers',
    });
    assert.ok(denials >= 2, `denials counted: ${denials}`);
  });

  test('a broken policy file is refused and the last good set stays in force', async () => {
    await writeFile(join(policyDir, 'broken.yaml'), 'kind: AuthorizationPolicy\nspec: [not, a, map\n');
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal((await fetch(`${webUrl}/emoji`)).status, 200);
    assert.equal((await fetch(`${attackerUrl}/emoji`)).status, 403);
    assert.match(server.output(), /policy files refused/);
  });
});
