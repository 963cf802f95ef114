// The dashboard API against an empty state directory and against a mesh of real tiny admin
// servers (canned Prometheus text) with one dead sidecar; time moves on an injected clock.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli } from '../../src/cli/index.ts';
import { fixedClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import { type FakeAdmin, refusingUrl, startFakeAdmin, writeFakeRuntime } from './fake-mesh.ts';

const T0 = Date.parse('2030-01-01T00:00:10Z');
const id = (name: string) => `spiffe://example.org/ns/shop/sa/${name}`;
const tls = (client: string) =>
  `tls="true",client_id="${id(client)}",server_id="${id('cart')}",no_tls_reason=""`;
const cartMetrics = (ok: number) => `# HELP mutual_inbound_connections_total x
mutual_inbound_connections_total{${tls('web')},port="7002"} 3
mutual_inbound_http_requests_total{${tls('web')},port="7002",method="GET",status_code="200"} ${ok}
mutual_inbound_http_requests_total{${tls('web')},port="7002",method="GET",status_code="503"} 1
mutual_inbound_connections_total{tls="no_identity",client_id="",server_id="${id('cart')}",no_tls_reason="no_client_hello",port="7002"} 2
mutual_inbound_http_requests_total{tls="no_identity",client_id="",server_id="${id('cart')}",no_tls_reason="no_client_hello",port="7002",method="GET",status_code="403"} 2
mutual_authorization_decisions_total{decision="deny",policy="shop/cart-only-from-web",client_id="",port="7002"} 2
`;
const webMetrics = `mutual_outbound_connections_total{tls="true",client_id="${id('web')}",server_id="${id('cart')}",no_tls_reason="",destination="127.0.0.1:7102"} 3
mutual_outbound_connections_total{tls="no_identity",client_id="${id('web')}",server_id="",no_tls_reason="not_meshed",destination="10.9.9.9:5432"} 4
`;
const identityMetrics = `mutual_identity_issuer_expiry_timestamp_seconds 1900000000
mutual_identity_trust_anchor_expiry_timestamp_seconds{fingerprint="aabbccdd00112233"} ${T0 / 1000 + 5 * 86400}
`;
const iso = (ms: number) => new Date(ms).toISOString();

let dir: string;
let admins: FakeAdmin[] = [];
let cart: FakeAdmin;
let identityAdmin: FakeAdmin;
let clock: ReturnType<typeof fixedClock>;
let empty: Dashboard;
let mesh: Dashboard;

async function get(base: string, path: string, headers: Record<string, string> = {}, method = 'GET') {
  return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = request(new URL(path, base), { method, headers }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, type: response.headers['content-type'] ?? '', body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
const api = async (dashboard: Dashboard, path: string) => {
  const answer = await get(dashboard.url, path);
  assert.equal(answer.status, 200, answer.body);
  return JSON.parse(answer.body);
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-api-'));
  clock = fixedClock(T0);
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(
    join(policyDir, 'shop.yaml'),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec: { mtls: { mode: PERMISSIVE } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: web-ports, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  portLevelMtls: { 8080: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: cart-only-from-web, namespace: shop }
spec:
  selector: { matchLabels: { app: cart } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["example.org/ns/shop/sa/web"] } }] }]
`,
  );
  cart = await startFakeAdmin(cartMetrics(9), {
    spiffeId: id('cart'),
    notBefore: iso(T0 - 3600_000),
    notAfter: iso(T0 + 20 * 3600_000),
    renewAt: iso(T0 + 13 * 3600_000),
    lastRenewal: { result: 'ok', at: iso(T0 - 3600_000) },
  });
  const web = await startFakeAdmin(webMetrics, {
    spiffeId: id('web'),
    notBefore: iso(T0 - 23 * 3600_000),
    notAfter: iso(T0 + 3600_000),
    renewAt: iso(T0 - 6 * 3600_000),
    lastRenewal: { result: 'failed', at: iso(T0 - 60_000), error: { code: 'MUTUAL_X' } },
  });
  const identity = await startFakeAdmin(identityMetrics);
  identityAdmin = identity;
  admins = [cart, web, identity];
  await writeFakeRuntime(join(dir, 'mesh'), {
    identityAdminUrl: identity.url,
    policyDir,
    services: [
      { name: 'web', adminUrl: web.url, appPort: 7001, inboundPort: 7101 },
      { name: 'cart', adminUrl: cart.url, appPort: 7002, inboundPort: 7102 },
      { name: 'payments', adminUrl: await refusingUrl(), appPort: 7003, inboundPort: 7103 },
    ],
  });
  const config = { host: '127.0.0.1', port: 0, refreshMs: 1000, windowMs: 60_000 };
  empty = await createDashboard({ ...config, stateDir: join(dir, 'nothing') }, { clock });
  mesh = await createDashboard({ ...config, stateDir: join(dir, 'mesh') }, { clock });
});

after(async () => {
  empty?.destroy();
  mesh?.destroy();
  await Promise.all(admins.map((admin) => admin.close()));
  await rm(dir, { recursive: true, force: true });
});

test('an empty state directory: every endpoint answers, saying no mesh runs', async () => {
  const overview = await api(empty, '/api/overview');
  assert.equal(overview.mesh.isRunning, false);
  assert.equal(overview.traffic.connections.securedShare, null);
  const noMesh = overview.checks.failing.find(
    (f: any) => f.description === 'a mesh is running from the state directory',
  );
  assert.match(noMesh.message, /^no runtime\.json in .*nothing$/);
  assert.match(noMesh.fix, /`mutual up -f mesh\.yaml --state-dir .*nothing`/);
  assert.deepEqual((await api(empty, '/api/edges')).edges, []);
  const certificates = await api(empty, '/api/certificates');
  assert.equal(certificates.issuer, null);
  assert.deepEqual(certificates.workloads, []);
  const policy = await api(empty, '/api/policy');
  assert.deepEqual([policy.workloads, policy.denials], [[], []]);
});

test('overview: mTLS share, meshed/unmeshed workloads, the dead sidecar and what expires', async () => {
  const overview = await api(mesh, '/api/overview');
  assert.deepEqual(overview.traffic.connections, { total: 9, secured: 3, securedShare: 3 / 9 });
  assert.deepEqual(overview.traffic.requests, { total: 12, secured: 10, securedShare: 10 / 12 });
  assert.deepEqual(overview.workloads, {
    meshed: ['web', 'cart'],
    unreachable: ['payments'],
    unmeshed: ['10.9.9.9:5432', 'unknown'],
  });
  assert.equal(overview.denials.total, 2);
  const messages = overview.problems.map((p: { message: string }) => p.message).join('\n');
  // Times as the page shows them everywhere else (was 2030-01-01T01:00:10.000Z).
  assert.match(messages, /trust anchor aabbccdd00112233 expires at 2030-01-06 00:00:10 UTC/);
  assert.match(messages, /web's certificate expires at 2030-01-01 01:00:10 UTC/);
});

test('overview lists what `mutual check` reports as failing, with the message and the fix', async () => {
  const { checks } = await api(mesh, '/api/overview');
  assert.ok(checks.errors > 0);
  const find = (description: string, subject: string | null = null) =>
    checks.failing.find((f: any) => f.description === description && f.subject === subject);
  const dead = find('sidecar is ready', 'payments');
  assert.equal(dead.severity, 'error');
  assert.match(dead.message, /^the sidecar does not answer at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  // The command reads the dashboard's state directory, not the default one.
  assert.ok(dead.fix.includes(`\`mutual logs payments --proxy --state-dir ${join(dir, 'mesh')}\``), dead.fix);
  const plaintext = find('no plaintext traffic into meshed workloads');
  assert.deepEqual(plaintext.details, [
    'unknown → cart:8080: 2 connections, 2 requests, 2 denied by shop/cart-only-from-web (2) (no_client_hello)',
    'no counters from the sidecar of payments (it does not answer)',
  ]);
  // The mesh started 10 s before the clock's now: all of its counters are recent.
  assert.equal(checks.trafficWindow.basis, 'mesh-start');
  assert.equal(checks.trafficWindow.description, 'the last 60 s of traffic (the mesh started 10 s ago)');
  assert.equal(checks.failing[0].severity, 'error', 'errors come first');
  assert.ok(
    checks.failing.every((f: any) => f.severity !== 'info'),
    'informational checks are not failures',
  );
});

test('edges: identities, secured or why not, success rate, namespace filter, missing sidecar', async () => {
  const { edges, unreachable, namespaces } = await api(mesh, '/api/edges');
  const byId = Object.fromEntries(edges.map((edge: any) => [edge.id, edge]));
  // One row per client, destination and port: the plaintext client's denials are on its row.
  assert.deepEqual(Object.keys(byId).sort(), ['unknown→cart:8080', 'web→10.9.9.9:5432', 'web→cart:8080']);
  const secured = byId['web→cart:8080'];
  assert.equal(secured.isSecured, true);
  assert.equal(secured.port, 8080);
  assert.equal(secured.clientId, id('web'));
  assert.equal(secured.serverId, id('cart'));
  assert.equal(secured.requests, 10);
  assert.equal(secured.successRate, 0.9);
  assert.equal(secured.requestRate, null, 'no rate before a second snapshot');
  const plaintext = byId['unknown→cart:8080'];
  assert.equal(plaintext.isSecured, false);
  assert.equal(plaintext.reason, 'no_client_hello');
  assert.equal(plaintext.denied, 2);
  assert.equal(byId['web→10.9.9.9:5432'].protocol, 'tcp');
  assert.equal(byId['web→10.9.9.9:5432'].reason, 'not_meshed');
  assert.equal(unreachable[0].service, 'payments');
  assert.deepEqual(namespaces, ['shop']);
  assert.equal((await api(mesh, '/api/edges?namespace=elsewhere')).edges.length, 0);
});

test('rates come from two snapshots on the clock: 30 more requests in 10 s is 3/s', async () => {
  await api(mesh, '/api/edges');
  cart.metrics = cartMetrics(39);
  clock.advance(10_000);
  const { edges, windowSeconds } = await api(mesh, '/api/edges');
  assert.equal(windowSeconds, 10);
  assert.equal(edges.find((edge: any) => edge.id === 'web→cart:8080').requestRate, 3);
  cart.metrics = cartMetrics(9);
});

test('a page opened after no one looked for a while: rates start afresh, not as an average since then', async () => {
  const idleClock = fixedClock(T0);
  const board = await createDashboard(
    { host: '127.0.0.1', port: 0, refreshMs: 1000, windowMs: 60_000, stateDir: join(dir, 'mesh') },
    { clock: idleClock },
  );
  try {
    await api(board, '/api/edges');
    // 12 minutes without a page open (no snapshots), then 30 requests in the last 10 s.
    idleClock.advance(720_000);
    cart.metrics = cartMetrics(9);
    const opened = await api(board, '/api/edges');
    // Was windowSeconds 720 and 0.04/s: the last snapshot, taken 12 minutes ago, as the window.
    assert.equal(opened.windowSeconds, null);
    assert.equal((await api(board, '/api/overview')).denials.windowSeconds, null);
    cart.metrics = cartMetrics(39);
    idleClock.advance(10_000);
    const { edges, windowSeconds } = await api(board, '/api/edges');
    assert.equal(windowSeconds, 10);
    assert.equal(edges.find((edge: any) => edge.id === 'web→cart:8080').requestRate, 3);
  } finally {
    cart.metrics = cartMetrics(9);
    board.destroy();
  }
});

test('certificates: issuer and anchors from the identity service, countdowns and thresholds', async () => {
  const certificates = await api(mesh, '/api/certificates');
  assert.equal(certificates.issuer.notAfter, iso(1900000000_000));
  assert.equal(certificates.issuer.status, 'ok');
  assert.equal(certificates.trustAnchors[0].status, 'critical');
  const byService = Object.fromEntries(certificates.workloads.map((w: any) => [w.service, w]));
  assert.equal(byService.cart.status, 'ok');
  assert.ok(byService.cart.secondsToRenewal > 0);
  assert.equal(byService.web.status, 'critical');
  assert.equal(byService.web.lastRenewal.result, 'failed');
  assert.equal(byService.payments.status, 'unknown');
  assert.equal(byService.payments.spiffeId, id('payments'));
  assert.match(byService.payments.error, /ECONNREFUSED/);
});

test('policy: effective mode per workload and port from the policy files, denials with the deciding policy', async () => {
  const policy = await api(mesh, '/api/policy');
  const cartPolicy = policy.workloads.find((w: any) => w.service === 'cart');
  assert.deepEqual(cartPolicy.ports, [
    { port: 8080, appPort: 7002, mode: 'PERMISSIVE', level: 'namespace', policy: 'shop/default' },
  ]);
  assert.deepEqual(cartPolicy.authorizationPolicies.ALLOW, ['shop/cart-only-from-web']);
  // portLevelMtls names the declared port, as sidecars match it (--policy-port), not the app's 7001.
  assert.deepEqual(policy.workloads.find((w: any) => w.service === 'web').ports, [
    { port: 8080, appPort: 7001, mode: 'STRICT', level: 'port', policy: 'shop/web-ports' },
  ]);
  // The port as mesh.yaml declares it (as Edges and the modes above show it), not the app's 7002.
  assert.deepEqual(
    policy.denials.map((d: any) => [d.service, d.client, d.policy, d.port, d.count]),
    [['cart', 'unknown (plaintext)', 'shop/cart-only-from-web', '8080', 2]],
  );
});

test('the stream sends all four views as one event', async () => {
  const controller = new AbortController();
  const response = await fetch(`${mesh.url}api/stream`, { signal: controller.signal });
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body!) {
    text += decoder.decode(chunk);
    if (text.includes('event: update\ndata: ') && text.endsWith('\n\n')) break;
  }
  controller.abort();
  const data = JSON.parse(/event: update\ndata: (.*)\n\n/.exec(text)![1]!);
  assert.deepEqual(Object.keys(data), ['overview', 'edges', 'certificates', 'policy', 'checks']);
});

test('the page and the refusals: utf-8 HTML, read-only, loopback Host only, JSON 404', async () => {
  const page = await get(mesh.url, '/');
  assert.equal(page.type, 'text/html; charset=utf-8');
  assert.match(page.body, /<script src="\/app\.js"/);
  assert.equal((await get(mesh.url, '/app.js')).status, 200);
  const post = await get(mesh.url, '/api/overview', {}, 'POST');
  assert.equal(post.status, 405);
  assert.equal(JSON.parse(post.body).error.code, 'MUTUAL_DASHBOARD_READ_ONLY');
  const rebound = await get(mesh.url, '/api/overview', { host: 'evil.example:80' });
  assert.equal(rebound.status, 421);
  assert.equal(JSON.parse(rebound.body).error.code, 'MUTUAL_DASHBOARD_HOST_REFUSED');
  const missing = await get(mesh.url, '/api/nope');
  assert.equal(JSON.parse(missing.body).error.code, 'MUTUAL_DASHBOARD_NOT_FOUND');
});

test('mutual dashboard: prints the URL on loopback; another address needs --allow-remote', async () => {
  let output = '';
  let stop: (signal: string) => void = () => {};
  const context = {
    clock,
    cwd: dir,
    isColor: false,
    write: (text: string) => {
      output += text;
    },
    writeError: (text: string) => {
      output += text;
    },
    setExitCode: () => {},
    untilShutdown: () =>
      new Promise<string>((resolve) => {
        stop = resolve;
      }),
  };
  const running = runCli(['dashboard', '--state-dir', 'mesh', '--listen', '127.0.0.1:0'], context);
  while (!output.includes('http://')) await new Promise((resolve) => setTimeout(resolve, 20));
  const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)![1]!;
  assert.equal((await get(url, '/api/overview')).status, 200);
  stop('SIGINT');
  assert.equal(await running, 0);
  output = '';
  const code = await runCli(['dashboard', '--listen', '0.0.0.0:0'], context);
  assert.equal(code, 1);
  assert.match(output, /error\[MUTUAL_DASHBOARD_REMOTE_NOT_ALLOWED\].*--allow-remote/);
});

test('/api/checks: the whole report; cached for a few seconds, so the sidecars are not asked on every call', async () => {
  const first = await api(mesh, '/api/checks');
  const asked = identityAdmin.hits['/ready'] ?? 0;
  for (let call = 0; call < 5; call++) await api(mesh, '/api/checks');
  assert.equal(identityAdmin.hits['/ready'], asked, 'no new check run within the cache time');
  const descriptions = first.checks.map((c: any) => c.description);
  assert.ok(descriptions.includes('trust anchors can be read'));
  assert.ok(descriptions.includes('policy files are valid'));
  const policies = first.checks.find((c: any) => c.description === 'policy files are valid');
  assert.equal(policies.status, 'ok');
  clock.advance(6000);
  const stale = await api(mesh, '/api/checks');
  assert.equal(stale.generatedAt, first.generatedAt, 'a stale report is served while a new one is made');
  for (let attempt = 0; attempt < 100 && (identityAdmin.hits['/ready'] ?? 0) === asked; attempt++)
    await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(identityAdmin.hits['/ready'], asked + 1, 'one new run after the cache time');
  // The run has started (it asked the identity service); its report replaces the stale one when done.
  let renewed = await api(mesh, '/api/checks');
  for (let attempt = 0; attempt < 100 && renewed.generatedAt === first.generatedAt; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    renewed = await api(mesh, '/api/checks');
  }
  assert.notEqual(renewed.generatedAt, first.generatedAt);
});

test('the traffic check judges the last window: plaintext that stopped a minute ago passes, new plaintext fails', async () => {
  /** The report made at the clock's now (a stale one is served while it is made). */
  const fresh = async () => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const report = await api(mesh, '/api/checks');
      if (report.generatedAt === iso(clock.now())) return report;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('no fresh check report');
  };
  const plaintext = (report: any) =>
    report.checks.find((c: any) => c.description === 'no plaintext traffic into meshed workloads');
  await fresh();
  clock.advance(70_000);
  const quiet = await fresh();
  assert.equal(quiet.trafficWindow.basis, 'sample');
  assert.match(quiet.trafficWindow.description, /^the last 60 s of traffic/);
  assert.equal(plaintext(quiet).status, 'ok', JSON.stringify(plaintext(quiet)));
  cart.metrics = `${cartMetrics(9)}mutual_inbound_refused_total{reason="plaintext_strict",port="7002"} 1\n`;
  clock.advance(6000);
  const again = await fresh();
  assert.equal(plaintext(again).status, 'fail');
  assert.deepEqual(plaintext(again).results[0].details.slice(0, 1), [
    'unknown → cart:8080: 1 connection, 1 denied (refused: plaintext_strict)',
  ]);
  cart.metrics = cartMetrics(9);
});

test('a restarted sidecar, its counters from 0 again, shows its new traffic and denials, not none', async () => {
  const restartClock = fixedClock(T0);
  const board = await createDashboard(
    { host: '127.0.0.1', port: 0, refreshMs: 1000, windowMs: 60_000, stateDir: join(dir, 'mesh') },
    { clock: restartClock },
  );
  const denied = (count: number) => (text: string) =>
    text.replace('client_id="",port="7002"} 2', `client_id="",port="7002"} ${count}`);
  try {
    cart.metrics = denied(12)(cartMetrics(39));
    await api(board, '/api/edges');
    // cart's sidecar restarted: 20 + 1 requests and 2 denials since, all within these 10 s.
    cart.metrics = denied(2)(cartMetrics(20));
    restartClock.advance(10_000);
    const { edges } = await api(board, '/api/edges');
    assert.equal(edges.find((edge: any) => edge.id === 'web→cart:8080').requestRate, 2.1);
    const policy = await api(board, '/api/policy');
    assert.deepEqual(
      policy.denials.map((d: any) => [d.count, d.recent]),
      [[2, 2]],
    );
    assert.equal((await api(board, '/api/overview')).denials.recent, 2);
  } finally {
    cart.metrics = cartMetrics(9);
    board.destroy();
  }
});

test('when the mesh stops or starts, the checks judge the mesh that is there, not the last report', async () => {
  const stateDir = join(dir, 'stops');
  const services = [{ name: 'cart', adminUrl: cart.url, appPort: 7002, inboundPort: 7102 }];
  const policyDir = join(dir, 'policies');
  await writeFakeRuntime(stateDir, { identityAdminUrl: identityAdmin.url, policyDir, services });
  const stopClock = fixedClock(T0);
  const board = await createDashboard(
    { host: '127.0.0.1', port: 0, refreshMs: 1000, windowMs: 60_000, checksTtlMs: 5000, stateDir },
    { clock: stopClock },
  );
  // (The fake mesh's recorded processes do not exist: that check fails, but not for want of runtime.json.)
  const noMesh = (overview: any) =>
    overview.checks.failing.some((f: any) => /^no runtime\.json in /.test(f.message));
  try {
    assert.equal(noMesh(await api(board, '/api/overview')), false);
    // mutual down: runtime.json is gone. 2 s later (a new snapshot, the report still young) the
    // checks say so, instead of "all pass" on the mesh that was.
    await rm(join(stateDir, 'runtime.json'));
    stopClock.advance(2000);
    const down = await api(board, '/api/overview');
    assert.equal(down.mesh.isRunning, false);
    assert.equal(noMesh(down), true);
    // mutual up again: the next answer judges the new mesh.
    await writeFakeRuntime(stateDir, { identityAdminUrl: identityAdmin.url, policyDir, services });
    stopClock.advance(2000);
    const up = await api(board, '/api/overview');
    assert.equal(up.mesh.isRunning, true);
    assert.equal(noMesh(up), false);
  } finally {
    board.destroy();
  }
});
