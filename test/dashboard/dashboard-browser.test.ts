// The dashboard in a real browser (Debian's chromium driven by playwright-core) against the demo
// mesh started with `mutual up` in loopback mode: the demo's edges are secured with the right
// identities, a plaintext client shows up as not secured with its reason and as a failing check on
// the Overview, a client refused at the TLS handshake as a denial and in a note under the edges,
// the Certificates tab shows the issuer's expiry, and a stopped sidecar is a failing check with its
// fix. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as connectTls } from 'node:tls';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import type { MeshRuntime } from '../../src/mesh/index.ts';
import { type MeshUp, repoRoot, startMeshUp } from '../e2e/run-mutual.ts';
import { launchChromium, skip } from './chromium.ts';

let dir: string;
let up: MeshUp;
let runtime: MeshRuntime;
let dashboard: Dashboard;
let browser: Browser;
let page: Page;
const artifacts = join(repoRoot(), 'test-artifacts');

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-e2e-'));
  const stateDir = join(dir, 'state');
  up = await startMeshUp(['-f', 'examples/demo/mesh.yaml', '--state-dir', stateDir], 'The mesh is up');
  assert.match(up.output(), /The mesh is up/, up.output());
  runtime = JSON.parse(await readFile(join(stateDir, 'runtime.json'), 'utf8')) as MeshRuntime;
  dashboard = await createDashboard(
    { stateDir, host: '127.0.0.1', port: 0, refreshMs: 500, checksTtlMs: 1000 },
    { clock: systemClock },
  );
  await mkdir(artifacts, { recursive: true });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  dashboard?.destroy();
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

const row = (id: string) => page.locator(`tr[data-edge="${id}"]`);

test('Edges lists the demo edges as mTLS with both identities', { skip }, async () => {
  await page.goto(`${dashboard.url}#edges`);
  // The vote bot drives web, which calls emoji and voting: these edges appear within seconds.
  for (const [source, destination] of [
    ['vote-bot', 'web'],
    ['web', 'emoji'],
    ['web', 'voting'],
  ] as const) {
    const edge = row(`${source}→${destination}:8080`);
    await edge.waitFor({ timeout: 30_000 });
    const text = await edge.innerText();
    assert.match(text, /✓ mTLS/);
    assert.match(text, new RegExp(`ns/emojivoto/sa/${source}\\s+ns/emojivoto/sa/${destination}`));
  }
  await page.screenshot({ path: join(artifacts, 'dashboard-edges.png'), fullPage: true });
});

test("a plaintext client on web's STRICT inbound shows as not secured, with the reason", {
  skip,
}, async () => {
  const inbound = runtime.services.find((service) => service.name === 'web')!.ports[0]!.inboundPort!;
  const socket = connect({ host: '127.0.0.1', port: inbound });
  socket.on('error', () => {});
  socket.end('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
  await once(socket, 'close');
  await page.goto(`${dashboard.url}#edges`);
  const edge = row('unknown→web:8080');
  await edge.waitFor({ timeout: 15_000 });
  assert.match(await edge.innerText(), /✗ refused: plaintext_strict/);
  assert.equal(await edge.getAttribute('class'), 'insecure');
  await page.screenshot({ path: join(artifacts, 'dashboard-edges-plaintext.png'), fullPage: true });
  // The Overview lists it as `mutual check` does: the failing check, the edge, why, and the fix.
  await page.goto(`${dashboard.url}#overview`);
  const check = page.locator('li.check[data-check="no plaintext traffic into meshed workloads"]');
  await check.waitFor({ timeout: 15_000 });
  const text = await check.innerText();
  assert.match(text, /unknown → web:8080: 1 connection, 1 denied \(refused: plaintext_strict\)/);
  assert.match(text, /fix\s*add the client to mesh\.yaml/i);
  assert.match(await page.locator('.card.bad').innerText(), /CHECKS\s+\d+ failing/i);
  await page.screenshot({ path: join(artifacts, 'dashboard-overview.png'), fullPage: true });
  await page.goto(`${dashboard.url}#topology`);
  await page.locator('svg.topology path.edge.insecure').first().waitFor();
  await page.screenshot({ path: join(artifacts, 'dashboard-topology.png'), fullPage: true });
});

test("a TLS client with no certificate at emoji's STRICT inbound is a denial on the Policy tab", {
  skip,
}, async () => {
  const inbound = runtime.services.find((service) => service.name === 'emoji')!.ports[0]!.inboundPort!;
  // As openssl s_client with no -cert: the sidecar asks for one and refuses the handshake.
  const socket = connectTls({ host: '127.0.0.1', port: inbound, rejectUnauthorized: false });
  socket.on('error', () => {});
  // Not once(): the refusal is TLS alert 116, an 'error' that once() would throw.
  await new Promise((resolve) => socket.once('close', resolve));
  await page.goto(`${dashboard.url}#policy`);
  const denial = page.locator('tr[data-denial="emoji"]');
  await denial.waitFor({ timeout: 15_000 });
  assert.match(await denial.innerText(), /^emoji\s+unknown\s+refused: no_client_certificate\s+—\s+1\s+1$/);
  // The Edges tab says it happened as `mutual edges` does (it has no identity, so it is no row).
  await page.goto(`${dashboard.url}#edges`);
  const note = page.locator('li[data-refused="emoji"]');
  await note.waitFor({ timeout: 15_000 });
  assert.match(
    await note.innerText(),
    /^emoji's sidecar refused 1 TLS handshake since it started \(1 no_client_certificate\): a refused client has no identity, so it is no edge\. mutual logs emoji --proxy --state-dir \S+ names the first client/,
  );
});

test('Certificates shows when the issuer expires, and every workload certificate', { skip }, async () => {
  const issuerNotAfter = /issuer valid until (\S+?)Z/.exec(up.output())![1]!;
  await page.goto(`${dashboard.url}#certificates`);
  const issuer = page.locator('tr[data-cert="issuer"]');
  await issuer.waitFor();
  const text = await issuer.innerText();
  // Shown as a UTC time people read (2027-11-24 02:19:31 UTC), the ISO form `mutual up` printed.
  const shown = `${issuerNotAfter.replace('T', ' ').replace(/\.\d+$/, '')} UTC`;
  assert.ok(text.includes(shown), `${text} should name ${shown}`);
  assert.match(text, /ok\s+in 36\dd/);
  for (const name of ['web', 'emoji', 'voting', 'vote-bot']) {
    assert.match(await page.locator(`tr[data-cert="${name}"]`).innerText(), /ok\s+in (1d 0h|23h)/);
  }
  await page.screenshot({ path: join(artifacts, 'dashboard-certificates.png'), fullPage: true });
  await page.goto(`${dashboard.url}#policy`);
  await page.locator('tr[data-mode="voting"]').waitFor();
  assert.match(await page.locator('tr[data-mode="voting"]').innerText(), /STRICT\s+emojivoto\/default/);
  await page.screenshot({ path: join(artifacts, 'dashboard-policy.png'), fullPage: true });
});

test('a stopped sidecar is a failing check on the Overview, with the command that fixes it', {
  skip,
}, async (t) => {
  // Stopped, not killed: `up` starts a sidecar that exits again at once, and one that hangs only
  // once it has not answered /live for 30 s (the default liveness window); this is shown well before.
  const pid = runtime.services.find((service) => service.name === 'vote-bot')!.proxy.pid;
  process.kill(pid, 'SIGSTOP');
  t.after(() => process.kill(pid, 'SIGCONT'));
  await page.goto(`${dashboard.url}#overview`);
  const check = page.locator('li.check.error[data-check="sidecar is ready"]');
  await check.waitFor({ timeout: 20_000 });
  const text = await check.innerText();
  assert.match(text, /vote-bot: the sidecar does not answer at http:\/\/127\.0\.0\.1:\d+/);
  assert.match(text, /fix\s*read its log[\s\S]*mutual logs vote-bot --proxy --state-dir /i);
  assert.equal(
    await check.locator('code').first().innerText(),
    `mutual logs vote-bot --proxy --state-dir ${join(dir, 'state')}`,
  );
  await page.screenshot({ path: join(artifacts, 'dashboard-overview-stopped-sidecar.png'), fullPage: true });
  // The graph marks its node (was drawn as any other, so the Topology tab hid the outage).
  await page.goto(`${dashboard.url}#topology`);
  const node = page.locator('svg.topology g.node.unreachable[data-node="vote-bot"]');
  await node.waitFor({ timeout: 15_000 });
  assert.match((await node.locator('text.ns').textContent()) ?? '', /^sidecar not answering$/);
  await page.screenshot({ path: join(artifacts, 'dashboard-topology-stopped-sidecar.png'), fullPage: true });
});
