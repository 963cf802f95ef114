// The dashboard in a real browser (Debian's chromium driven by playwright-core) while things change
// under it, over a fake mesh of 30 services (real admin servers with canned counters): live redraws
// keep the keyboard focus and a text selection, the mesh stopping and starting again and the
// dashboard itself stopping are said on every tab (never stale data shown as current) and the
// page recovers without a reload; a phone-sized screen scrolls nothing sideways but the tables and
// the graph; the 30 services' graph has no two nodes on top of each other.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import { launchChromium, skip } from './chromium.ts';
import { type FakeAdmin, type FakeService, startFakeAdmin, writeFakeRuntime } from './fake-mesh.ts';

const SERVICES = 30;
const id = (name: string) => `spiffe://example.org/ns/shop/sa/${name}`;

let dir: string;
let stateDir: string;
let policyDir: string;
let services: FakeService[];
let admins: FakeAdmin[] = [];
let identityAdmin: FakeAdmin;
let dashboard: Dashboard;
let browser: Browser;
let page: Page;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-live-'));
  stateDir = join(dir, 'state');
  policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  // Every sidecar answers with the same counters: s1, s2 and s3 call it over mTLS (90 edges).
  const inbound = ['s1', 's2', 's3']
    .map(
      (client) =>
        `mutual_inbound_connections_total{tls="true",client_id="${id(client)}",server_id="",no_tls_reason="",port="7000"} 1\n` +
        `mutual_inbound_http_requests_total{tls="true",client_id="${id(client)}",server_id="",no_tls_reason="",port="7000",method="GET",status_code="200"} 5\n`,
    )
    .join('');
  const sidecar = await startFakeAdmin(inbound);
  identityAdmin = await startFakeAdmin('mutual_identity_issuer_expiry_timestamp_seconds 1900000000\n');
  admins = [sidecar, identityAdmin];
  services = Array.from({ length: SERVICES }, (_, i) => ({
    name: `s${i}`,
    adminUrl: sidecar.url,
    appPort: 7000,
    inboundPort: 17_000 + i,
  }));
  await writeFakeRuntime(stateDir, { identityAdminUrl: identityAdmin.url, policyDir, services });
  dashboard = await createDashboard(
    { stateDir, host: '127.0.0.1', port: 0, refreshMs: 300, checksTtlMs: 1000 },
    { clock: systemClock },
  );
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  dashboard?.destroy();
  await Promise.all(admins.map((admin) => admin.close()));
  await rm(dir, { recursive: true, force: true });
});

/** Resolves once the page has redrawn the Edges table (the one there now is replaced). */
async function nextRedraw() {
  await page.evaluate(`window.__table = document.querySelector('#view-edges table')`);
  await page.waitForFunction(() => {
    const table = (globalThis as any).__table;
    return table !== null && !table.isConnected;
  });
}

test('live redraws keep the keyboard on the namespace filter and the text the user selected', {
  skip,
}, async () => {
  await page.goto(`${dashboard.url}#edges`);
  await page.locator('tr[data-edge="s1→s7:8080"]').waitFor();
  // Keyboard: Tab reaches the tabs (the current one marked for screen readers), then the filter.
  assert.equal(await page.locator('#tabs a[aria-current="page"]').innerText(), 'Edges');
  await page.locator('#namespace').focus();
  await nextRedraw();
  await nextRedraw();
  assert.equal(await page.evaluate('document.activeElement.id'), 'namespace');
  await page.keyboard.press('ArrowDown');
  await page.waitForFunction(() => (globalThis as any).document.getElementById('namespace').value === 'shop');
  // Selecting an identity to copy it: redraws wait until the selection is let go.
  await page.evaluate(`{
    const range = document.createRange();
    range.selectNodeContents(document.querySelector('tr[data-edge="s1→s7:8080"] .id'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    window.__table = document.querySelector('#view-edges table');
  }`);
  await page.waitForTimeout(1500);
  assert.equal(await page.evaluate('getSelection().toString()'), 'ns/shop/sa/s1');
  assert.equal(await page.evaluate('window.__table.isConnected'), true, 'no redraw meanwhile');
  await page.evaluate('getSelection().removeAllRanges()');
  await page.waitForFunction(() => !(globalThis as any).__table.isConnected);
});

test('the mesh stopping and starting again is said on every tab, and followed without a reload', {
  skip,
}, async () => {
  await page.goto(`${dashboard.url}#edges`);
  await page.locator('tr[data-edge="s1→s7:8080"]').waitFor();
  assert.equal(await page.locator('#notice').isHidden(), true);
  await rm(join(stateDir, 'runtime.json'));
  const notice = page.locator('#notice');
  await notice.waitFor({ state: 'visible' });
  assert.match(
    await notice.innerText(),
    /^No mesh is running from .*state \(no runtime\.json\): start it with mutual up -f mesh\.yaml --state-dir /,
  );
  // The Edges tab does not blame the sidecars (was 'No traffic yet: the sidecars have not carried a connection').
  await page.waitForFunction(
    () =>
      (globalThis as any).document.querySelector('#view-edges .empty')?.textContent ===
      'No edges: no mesh is running.',
    undefined,
    { timeout: 10_000 },
  );
  for (const tab of ['overview', 'topology', 'certificates', 'policy']) {
    await page.locator(`#tabs a[data-tab="${tab}"]`).click();
    assert.equal(await notice.isVisible(), true, tab);
  }
  await writeFakeRuntime(stateDir, { identityAdminUrl: identityAdmin.url, policyDir, services });
  await notice.waitFor({ state: 'hidden' });
  await page.locator('#tabs a[data-tab="edges"]').click();
  await page.locator('tr[data-edge="s1→s7:8080"]').waitFor();
});

test('a phone-sized screen: only the tables and the graph scroll sideways', { skip }, async () => {
  const phone = await browser.newPage({
    viewport: { width: 375, height: 740 },
    isMobile: true,
    hasTouch: true,
  });
  try {
    for (const tab of ['overview', 'edges', 'topology', 'certificates', 'policy']) {
      await phone.goto(`${dashboard.url}#${tab}`);
      await phone.locator(`#view-${tab} .panel`).first().waitFor();
      const [scrollWidth, clientWidth] = (await phone.evaluate(
        '[document.documentElement.scrollWidth, document.documentElement.clientWidth]',
      )) as [number, number];
      assert.ok(
        scrollWidth <= clientWidth,
        `${tab}: the page is ${scrollWidth} px wide on a ${clientWidth} px screen`,
      );
    }
    // Every tab can be reached: the last one is on screen or the tab bar scrolls to it.
    await phone.locator('#tabs a[data-tab="policy"]').click();
    assert.equal(await phone.evaluate('location.hash'), '#policy');
  } finally {
    await phone.close();
  }
});

test('the graph of 30 services: no two nodes overlap, and the many mTLS edges leave their labels to tooltips', {
  skip,
}, async () => {
  await page.goto(`${dashboard.url}#topology`);
  // Measured in the same task that finds the tab shown and every box laid out: a live redraw
  // (every 300 ms here) replaces the graph, and boxes read in a later task were once all 0×0.
  const laidOut = await page.waitForFunction((count) => {
    const doc = (globalThis as any).document;
    const rects = [...doc.querySelectorAll('#view-topology:not([hidden]) svg.topology g.node rect')];
    const boxes = rects.map((rect: any) => {
      const box = rect.getBoundingClientRect();
      return { left: box.left, right: box.right, top: box.top, bottom: box.bottom };
    });
    return boxes.length === count && boxes.every((box) => box.right > box.left) ? boxes : null;
  }, SERVICES);
  const boxes = (await laidOut.jsonValue()) as Array<{
    left: number;
    right: number;
    top: number;
    bottom: number;
  }>;
  assert.equal(boxes.length, SERVICES);
  for (let a = 0; a < boxes.length; a++) {
    for (let b = a + 1; b < boxes.length; b++) {
      const [p, q] = [boxes[a]!, boxes[b]!];
      const isOverlapping = p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom;
      assert.equal(isOverlapping, false, `nodes s${a} and s${b} overlap`);
    }
  }
  // Each node is drawn large enough to read.
  assert.ok(
    boxes.every((box) => box.right - box.left >= 60),
    JSON.stringify(boxes[0]),
  );
  // 90 edges, 3 of them a service calling itself (not drawn).
  assert.equal(await page.locator('svg.topology path.edge').count(), 87);
  assert.equal(await page.locator('svg.topology text.rate').count(), 0, 'all are mTLS: no label needed');
});

test('the dashboard stopping is said on every tab, the data marked as old; it recovers without a reload', {
  skip,
}, async () => {
  await page.goto(`${dashboard.url}#edges`);
  await page.locator('tr[data-edge="s1→s7:8080"]').waitFor();
  const port = Number(new URL(dashboard.url).port);
  dashboard.destroy();
  const notice = page.locator('#notice');
  await notice.waitFor({ state: 'visible' });
  assert.match(
    await notice.innerText(),
    /^Not updating: the dashboard does not answer \(stopped\?\), reconnecting\. What you see was taken at .+ \(\d+s ago\)\.$/,
  );
  assert.equal(await page.locator('main.stale').count(), 1);
  assert.match((await page.locator('#live').getAttribute('class')) ?? '', /\boff\b/);
  dashboard = await createDashboard(
    { stateDir, host: '127.0.0.1', port, refreshMs: 300, checksTtlMs: 1000 },
    { clock: systemClock },
  );
  await notice.waitFor({ state: 'hidden', timeout: 15_000 });
  assert.equal(await page.locator('main.stale').count(), 0);
  assert.match((await page.locator('#live').getAttribute('class')) ?? '', /\bon\b/);
});
