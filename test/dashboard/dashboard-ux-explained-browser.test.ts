// The dashboard in a real browser (Debian's chromium driven by playwright-core) over a fake mesh,
// for what a user could not tell from the page before: why an edge is not mTLS in words (was the
// bare code 'loopback'), which policy denied an edge and whether it was a DENY or an ALLOW one
// (was on hover only, the action nowhere), a renewal time past read as 'was due … ago' (was
// '… ago' under Renews, read as renewed), what the status colours mean, the full SPIFFE ID of a
// shortened one, a page heading, a graph a screen reader can describe, and on a phone a
// service name split at its hyphen no more (was 'order-' over 'history'), and the issuer's
// fingerprint (was '—'), and Non-5xx over the window as Rate (was since start: 33 % long after
// a fault was fixed, beside checks that all passed).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import { launchChromium, skip } from './chromium.ts';
import { type FakeAdmin, refusingUrl, startFakeAdmin, writeFakeRuntime } from './fake-mesh.ts';

const id = (name: string) => `spiffe://example.org/ns/shop/sa/${name}`;
let dir: string;
let admins: FakeAdmin[] = [];
let webAdmin: FakeAdmin;
let dashboard: Dashboard;
let browser: Browser;

const DENY_CART = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-cart, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: DENY
  rules:
    - from: [{ source: { principals: ["example.org/ns/shop/sa/cart"] } }]
`;

const ISSUER_SHA256 = '0eb28417a19637ea2bc5bf5ae8ee76e09e3af5d9e4b8b9c53e47b794e984ca6d';
// Two ALLOW policies on web: a caller neither lets in is denied, the sidecar naming both.
const ALLOW_TWO = ['front', 'back']
  .map(
    (name) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-${name}, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["example.org/ns/shop/sa/${name}"] } }]
`,
  )
  .join('---\n');
const PERMISSIVE = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec: { mtls: { mode: PERMISSIVE } }
`;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-ux-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  await writeFile(join(policyDir, 'no-cart.yaml'), DENY_CART);
  await writeFile(join(policyDir, 'permissive.yaml'), PERMISSIVE);
  await writeFile(join(policyDir, 'allow.yaml'), ALLOW_TWO);
  const now = Date.now();
  const mtls = `tls="true",client_id="${id('cart')}",server_id="${id('web')}",no_tls_reason="",port="7000"`;
  const web = await startFakeAdmin(
    `mutual_inbound_connections_total{${mtls}} 1\n` +
      `mutual_inbound_http_requests_total{${mtls},method="GET",status_code="403"} 7\n` +
      // A fault before the page was opened: web's app answered 503 twenty times.
      `mutual_inbound_http_requests_total{${mtls},method="GET",status_code="503"} 20\n` +
      `mutual_authorization_decisions_total{decision="deny",policy="shop/no-cart",client_id="${id('cart')}",port="7000"} 7\n` +
      `mutual_authorization_decisions_total{decision="deny",policy="shop/allow-front,shop/allow-back",client_id="${id('order-history')}",port="7000"} 2\n` +
      // Counted before shop/retired was deleted: the counters run since the sidecar started.
      `mutual_authorization_decisions_total{decision="deny",policy="shop/retired",client_id="${id('gone')}",port="7000"} 1\n` +
      // curl from this machine to a PERMISSIVE port: plain text, accepted.
      `mutual_inbound_connections_total{tls="no_identity",client_id="",server_id="",no_tls_reason="loopback",port="7000"} 3\n`,
    {
      spiffeId: id('web'),
      notBefore: new Date(now - 3_600_000).toISOString(),
      notAfter: new Date(now + 82_800_000).toISOString(),
      renewAt: new Date(now + 50_000_000).toISOString(),
      lastRenewal: { result: 'ok', at: new Date(now - 3_600_000).toISOString() },
    },
  );
  // Renewal 10 min past and failing: the certificate was not replaced.
  const cart = await startFakeAdmin('', {
    spiffeId: id('cart'),
    notBefore: new Date(now - 3_000_000).toISOString(),
    notAfter: new Date(now + 600_000).toISOString(),
    renewAt: new Date(now - 600_000).toISOString(),
    lastRenewal: {
      result: 'failed',
      at: new Date(now).toISOString(),
      error: { code: 'MUTUAL_WORKLOAD_CERTIFY_FAILED', message: 'the identity service did not answer' },
    },
  });
  const identity = await startFakeAdmin(
    `mutual_identity_issuer_expiry_timestamp_seconds ${now / 1000 + 300 * 86_400}\n`,
    {},
    { json: { '/ca': { issuer: { fingerprintSha256: ISSUER_SHA256 } } } },
  );
  // Its calls to web fail before reaching it (web's sidecar refusing connections).
  const orders = await startFakeAdmin(
    'mutual_outbound_refused_total{reason="connect_failed",destination="127.0.0.1:17000"} 3\n',
    {
      spiffeId: id('order-history'),
      notBefore: new Date(now - 3_600_000).toISOString(),
      notAfter: new Date(now + 82_800_000).toISOString(),
      renewAt: new Date(now + 50_000_000).toISOString(),
    },
  );
  admins = [web, cart, orders, identity];
  webAdmin = web;
  const stateDir = join(dir, 'state');
  await writeFakeRuntime(stateDir, {
    identityAdminUrl: identity.url,
    policyDir,
    services: [
      { name: 'web', adminUrl: web.url, appPort: 7000, inboundPort: 17_000 },
      { name: 'cart', adminUrl: cart.url },
      { name: 'gone', adminUrl: await refusingUrl() },
      { name: 'order-history', adminUrl: orders.url },
    ],
  });
  dashboard = await createDashboard(
    { stateDir, host: '127.0.0.1', port: 0, refreshMs: 300, checksTtlMs: 1000 },
    { clock: systemClock },
  );
  browser = await launchChromium();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  dashboard?.destroy();
  await Promise.all(admins.map((admin) => admin.close()));
  await rm(dir, { recursive: true, force: true });
});

async function open(tab: string, width = 1280, height = 800): Promise<Page> {
  const page = await browser.newPage({ viewport: { width, height } });
  await page.goto(`${dashboard.url}#${tab}`);
  return page;
}

test('Edges says in words why an edge is not mTLS and which policy, DENY or ALLOW, denied one', {
  skip,
}, async () => {
  const page = await open('edges');
  try {
    const plain = page.locator('li[data-why="unknown→web:8080"]');
    await plain.waitFor({ timeout: 10_000 });
    assert.match(
      await plain.innerText(),
      /^unknown → web:8080 is not mTLS: loopback — a plain-text client on this machine \(loopback\), which this PERMISSIVE port accepts\.$/,
    );
    assert.match(
      (await page.locator('tr[data-edge="unknown→web:8080"] .pill').getAttribute('title')) ?? '',
      /^not mTLS: loopback — a plain-text client/,
    );
    const denied = page.locator('li[data-why="cart→web:8080"]');
    assert.equal(
      await denied.innerText(),
      'cart → web:8080: 7 requests denied (403) by shop/no-cart (DENY: a rule matched).',
    );
    assert.equal(
      await page.locator('li[data-why="order-history→web:8080"]').innerText(),
      'order-history → web:8080: 2 connections denied by shop/allow-front,shop/allow-back (ALLOW: no rule matched this client); ' +
        "3 failed before reaching web: connect_failed — the destination's sidecar could not be reached.",
    );
    assert.equal(
      await page.locator('li[data-why="gone→web:8080"]').innerText(),
      'gone → web:8080: 1 connection denied by shop/retired (no longer in force).',
    );
    // Shortened to ns/…/sa/… beside the trust domain in the header: the whole ID on hover.
    const client = page.locator('tr[data-edge="cart→web:8080"] td:nth-child(5) .id');
    assert.equal(await client.innerText(), 'ns/shop/sa/cart');
    assert.equal(await client.getAttribute('title'), id('cart'));
    await page.screenshot({ path: join(dir, 'edges.png'), fullPage: true });
  } finally {
    await page.close();
  }
});

test('Policy names the action of each authorization policy and of the one that denied', {
  skip,
}, async () => {
  const page = await open('policy');
  try {
    const mode = page.locator('tr[data-mode="web"]');
    await mode.waitFor({ timeout: 10_000 });
    assert.match(await mode.innerText(), /shop\/no-cart \(DENY\)$/);
    const denial = page.locator('tr[data-denial="web"]', { hasText: 'no-cart' });
    await denial.waitFor({ timeout: 10_000 });
    assert.match(await denial.innerText(), /^web\s+cart\s+shop\/no-cart \(DENY: a rule matched\)\s+8080\s+/);
  } finally {
    await page.close();
  }
});

test('a renewal time past reads "was due … ago", the status colours are explained', { skip }, async () => {
  const page = await open('certificates');
  try {
    const cart = page.locator('tr[data-cert="cart"]');
    await cart.waitFor({ timeout: 10_000 });
    assert.match(await cart.locator('td:nth-child(5)').innerText(), /^was due 1[01]m \d+s ago$/);
    assert.match(await page.locator('tr[data-cert="web"] td:nth-child(5)').innerText(), /^in \d+h \d+m$/);
    const legend = await page.locator('[data-legend="status"]').innerText();
    assert.match(
      legend,
      /warning under 25 % of its lifetime left.*critical under 10 % left.*expired past its end/s,
    );
    // The issuer's fingerprint, from the identity service's /ca (was '—': its /metrics names none).
    assert.equal(
      await page.locator('tr[data-cert="issuer"] td:nth-child(2)').innerText(),
      ISSUER_SHA256.slice(0, 16),
    );
    // A sidecar that does not answer says why on its 'unreachable' status.
    const gone = page.locator('tr[data-cert="gone"] .pill');
    assert.equal(await gone.innerText(), 'unreachable');
    assert.match((await gone.getAttribute('title')) ?? '', /^the sidecar does not answer: .*ECONNREFUSED/);
  } finally {
    await page.close();
  }
});

test('the page has a heading, and the graph a description and a legend not told by colour alone', {
  skip,
}, async () => {
  const page = await open('topology');
  try {
    assert.equal(await page.locator('h1').innerText(), 'Mutual');
    const graph = page.locator('svg.topology');
    await graph.waitFor({ timeout: 10_000 });
    await page.locator('svg.topology path.edge.insecure').waitFor({ timeout: 10_000 });
    assert.match(
      (await graph.getAttribute('aria-label')) ?? '',
      /^service graph: 5 services, 4 edges, 3 mTLS \(3 with denials\), 1 not mTLS;/,
    );
    // Hovering the not-mTLS edge says why in words, as the Edges tab does.
    assert.match(
      (await page.locator('svg.topology path.edge.insecure title').textContent()) ?? '',
      /^unknown→web:8080 · not mTLS: loopback — a plain-text client on this machine/,
    );
    // The not-mTLS edge is dashed on the graph: so is its line in the legend (was a solid red line).
    const legendLine = (await page.evaluate(
      "getComputedStyle(document.querySelector('.legend .l-bad')).backgroundImage",
    )) as string;
    assert.match(legendLine, /repeating-linear-gradient/);
  } finally {
    await page.close();
  }
});

test('on a phone a short service name and identity part stay whole, broken only after a /', {
  skip,
}, async () => {
  const page = await open('certificates', 390, 844);
  try {
    await page.locator('tr[data-cert="order-history"] .id').waitFor({ timeout: 10_000 });
    // How many lines each piece of text takes: the name cell, and each part of the identity.
    const lines = (await page.evaluate(`(() => {
      const row = document.querySelector('tr[data-cert="order-history"]');
      const count = (node) => {
        const range = document.createRange();
        range.selectNodeContents(node);
        return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
      };
      const parts = [...row.querySelector('.id').childNodes].filter((node) => node.nodeType === 3);
      return [count(row.cells[0])].concat(parts.map(count));
    })()`)) as number[];
    assert.deepEqual(lines, [1, 1, 1, 1, 1], 'order-history, then ns/ shop/ sa/ order-history');
  } finally {
    await page.close();
  }
});

test('Non-5xx is over the window, as Rate: a fault before it no longer drags the edge down', {
  skip,
}, async () => {
  const page = await open('edges');
  try {
    await page.locator('tr[data-edge="cart→web:8080"]').waitFor({ timeout: 10_000 });
    // The fault is over: ten requests answered 200 since.
    webAdmin.metrics += `mutual_inbound_http_requests_total{tls="true",client_id="${id('cart')}",server_id="${id('web')}",no_tls_reason="",port="7000",method="GET",status_code="200"} 10\n`;
    const cell = await page.waitForFunction(
      () => {
        const span = (globalThis as any).document.querySelector(
          'tr[data-edge="cart→web:8080"] td:nth-child(8) span',
        );
        return span && span.textContent === '100%' && [span.textContent, span.getAttribute('title')];
      },
      undefined,
      { timeout: 10_000 },
    );
    const [text, title] = (await cell.jsonValue()) as [string, string];
    assert.equal(text, '100%');
    // 17 of 37 requests below 500 since the sidecar started.
    assert.match(title, /^100% in the last \d+ s; 45\.9% since the sidecar started$/);
  } finally {
    await page.close();
  }
});
