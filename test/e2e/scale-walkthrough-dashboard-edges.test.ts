// The dashboard's Edges tab for a mesh whose services all call each other: 15 services make 210
// edges (40 made 1,560, and redrawing every row took the page ~0.5 s of each 2 s update). Past 200
// it draws 200, every edge with a problem among them even when it sorts last, says so, and draws
// them all when asked. Sidecars are tiny HTTP servers answering /metrics as real ones do.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import { launchChromium, skip } from '../dashboard/chromium.ts';
import { type FakeAdmin, startFakeAdmin, writeFakeRuntime } from '../dashboard/fake-mesh.ts';

const names = Array.from({ length: 15 }, (_, at) => `s${String(at).padStart(2, '0')}`);
const id = (name: string) => `spiffe://example.org/ns/shop/sa/${name}`;
const appPort = (at: number) => 21_000 + at;

/** What the sidecar of names[at] counts: one mTLS request from every other service; s14's denied at s13. */
function inboundMetrics(at: number): string {
  const server = names[at]!;
  return names
    .filter((client) => client !== server)
    .flatMap((client) => {
      const labels = `tls="true",client_id="${id(client)}",server_id="${id(server)}",no_tls_reason="",port="${appPort(at)}"`;
      const isDenied = client === 's14' && server === 's13';
      return [
        `mutual_inbound_connections_total{${labels}} 1`,
        `mutual_inbound_http_requests_total{${labels},method="GET",status_code="${isDenied ? 403 : 200}"} 1`,
        ...(isDenied
          ? [
              `mutual_authorization_decisions_total{decision="deny",policy="shop/only-s00",client_id="${id(client)}",port="${appPort(at)}"} 1`,
            ]
          : []),
      ];
    })
    .join('\n');
}

let dir: string;
let admins: FakeAdmin[] = [];
let dashboard: Dashboard;
let browser: Browser;
let page: Page;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-scale-dashboard-'));
  admins = await Promise.all(names.map((_, at) => startFakeAdmin(inboundMetrics(at))));
  const identity = await startFakeAdmin('');
  admins.push(identity);
  await writeFakeRuntime(join(dir, 'state'), {
    identityAdminUrl: identity.url,
    policyDir: join(dir, 'policies'),
    services: names.map((name, at) => ({
      name,
      adminUrl: admins[at]!.url,
      appPort: appPort(at),
      inboundPort: 22_000 + at,
      mode: 'STRICT' as const,
    })),
  });
  dashboard = await createDashboard(
    { stateDir: join(dir, 'state'), host: '127.0.0.1', port: 0, refreshMs: 500, checksTtlMs: 5000 },
    { clock: systemClock },
  );
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  dashboard?.destroy();
  await Promise.all(admins.map((admin) => admin.close()));
  await rm(dir, { recursive: true, force: true });
});

test('210 edges: 200 drawn with the denied one that sorts last, and all of them on request', {
  skip,
}, async () => {
  await page.goto(`${dashboard.url}#edges`);
  const rows = page.locator('#view-edges tbody tr');
  await page.locator('tr[data-edge="s00→s01:8080"]').waitFor({ timeout: 15_000 });
  assert.equal(await rows.count(), 200);
  assert.match(
    await page.locator('.trimmed').innerText(),
    /^Showing 200 of 210 edges: every one not mTLS, denied or failing, then the others in order\. Show all 210$/,
  );
  // s14→s13 sorts last of the 210; denied, it is drawn all the same.
  assert.match(
    await page.locator('tr[data-edge="s14→s13:8080"]').innerText(),
    /ns\/shop\/sa\/s14\s+ns\/shop\/sa\/s13/,
  );
  await page.locator('#all-edges').click();
  assert.equal(await rows.count(), 210);
  // Still all of them after the next update.
  await page.waitForTimeout(1200);
  assert.equal(await rows.count(), 210);
  assert.equal(await page.locator('.trimmed').count(), 0);
});
