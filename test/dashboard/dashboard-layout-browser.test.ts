// The dashboard in a real browser (Debian's chromium driven by playwright-core) as a user reads it,
// over a fake mesh with a long foreign SPIFFE ID and a sidecar whose renewal fails: the TLS status
// of every edge is on screen at desktop width, a table scrolled sideways on a phone stays scrolled
// across live redraws, a failing renewal says why, an overdue renewal of an expired short-lived
// certificate is red, status text is readable (4.5:1 contrast), and
// the graph on a phone scrolls rather than shrinks its names to dots, denials stand out and
// certificate end dates read as UTC times.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { systemClock } from '../../src/clock.ts';
import { createDashboard, type Dashboard } from '../../src/dashboard/index.ts';
import { launchChromium, skip } from './chromium.ts';
import { type FakeAdmin, startFakeAdmin, writeFakeRuntime } from './fake-mesh.ts';

const id = (name: string) => `spiffe://example.org/ns/shop/sa/${name}`;
const LONG = 'payments-settlement-reconciliation-worker-eu-west-1';
/** A client of another trust domain: its full ID is shown, 150 characters. */
const FOREIGN = `spiffe://partner.example.com/ns/settlement/sa/${LONG}-${LONG}`;

let dir: string;
let admins: FakeAdmin[] = [];
let dashboard: Dashboard;
let browser: Browser;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mutual-dashboard-layout-'));
  const policyDir = join(dir, 'policies');
  await mkdir(policyDir);
  const now = Date.now();
  const inbound =
    [LONG, 'cart']
      .map((client) => id(client))
      .concat(FOREIGN)
      .map(
        (client) =>
          `mutual_inbound_connections_total{tls="true",client_id="${client}",server_id="${id('web')}",no_tls_reason="",port="7000"} 2\n`,
      )
      .join('') +
    `mutual_inbound_http_requests_total{tls="true",client_id="${id('cart')}",server_id="${id('web')}",no_tls_reason="",port="7000",method="GET",status_code="200"} 12345\n` +
    `mutual_inbound_received_bytes_total{tls="true",client_id="${id('cart')}",server_id="${id('web')}",no_tls_reason="",port="7000"} 7600\n` +
    `mutual_authorization_decisions_total{decision="deny",policy="shop/web-callers",client_id="${id('cart')}",port="7000"} 4\n`;
  const certificate = (name: string, renewAgoS: number) => ({
    spiffeId: id(name),
    notBefore: new Date(now - 1800_000).toISOString(),
    notAfter: new Date(now + 1800_000).toISOString(),
    renewAt: new Date(now - renewAgoS * 1000).toISOString(),
  });
  const web = await startFakeAdmin(inbound, {
    ...certificate('web', -600),
    lastRenewal: { result: 'ok', at: new Date(now).toISOString() },
  });
  const pay = await startFakeAdmin('', {
    ...certificate(LONG, 900),
    lastRenewal: {
      result: 'failed',
      at: new Date(now).toISOString(),
      error: { code: 'MUTUAL_WORKLOAD_CERTIFY_FAILED', message: 'the identity service did not answer' },
    },
  });
  const cart = await startFakeAdmin('', {
    ...certificate('cart', -600),
    lastRenewal: { result: 'ok', at: new Date(now).toISOString() },
  });
  // A one-minute certificate whose renewal is 48 s overdue: it expired 30 s ago.
  const cache = await startFakeAdmin('', {
    spiffeId: id('cache'),
    notBefore: new Date(now - 90_000).toISOString(),
    notAfter: new Date(now - 30_000).toISOString(),
    renewAt: new Date(now - 48_000).toISOString(),
    lastRenewal: { result: 'ok', at: new Date(now - 90_000).toISOString() },
  });
  const identity = await startFakeAdmin(
    `mutual_identity_issuer_expiry_timestamp_seconds ${now / 1000 + 5 * 86_400}\n` +
      `mutual_identity_trust_anchor_expiry_timestamp_seconds{fingerprint="82790b6bd16b9454"} ${now / 1000 + 20 * 86_400}\n`,
  );
  admins = [web, pay, cart, cache, identity];
  const stateDir = join(dir, 'state');
  await writeFakeRuntime(stateDir, {
    identityAdminUrl: identity.url,
    policyDir,
    services: [
      { name: 'web', adminUrl: web.url, appPort: 7000, inboundPort: 17_000 },
      { name: LONG, adminUrl: pay.url },
      { name: 'cart', adminUrl: cart.url },
      { name: 'cache', adminUrl: cache.url, appPort: 7003, inboundPort: 17_003, mode: 'PERMISSIVE' },
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

async function open(
  tab: string,
  width: number,
  height: number,
  isMobile = false,
  colorScheme: 'light' | 'dark' = 'light',
): Promise<Page> {
  const page = await browser.newPage({
    viewport: { width, height },
    isMobile,
    hasTouch: isMobile,
    colorScheme,
  });
  await page.goto(`${dashboard.url}#${tab}`);
  await page.locator(`#view-${tab} table`).first().waitFor();
  return page;
}

test("a long SPIFFE ID wraps: every edge's TLS status is on screen at desktop width", { skip }, async () => {
  const page = await open('edges', 1280, 800);
  try {
    await page.locator(`tr[data-edge="${FOREIGN}→web:8080"]`).waitFor();
    const [scrollWidth, clientWidth] = (await page
      .locator('#view-edges .scroll')
      .evaluate((el) => [el.scrollWidth, el.clientWidth])) as [number, number];
    assert.ok(scrollWidth <= clientWidth, `the edges table is ${scrollWidth} px wide in ${clientWidth} px`);
    const pills = await page
      .locator('#view-edges tbody .pill')
      .evaluateAll((els) =>
        els.map((el) => ({ text: el.textContent, right: el.getBoundingClientRect().right })),
      );
    assert.equal(pills.length, 3);
    for (const pill of pills) assert.ok(pill.right <= 1280, `${pill.text} at ${pill.right} px is off screen`);
    // Wrapping only breaks lines: the text (what a copy gives) is the whole ID.
    const cell = page.locator(`tr[data-edge="${FOREIGN}→web:8080"] .id`).first();
    assert.equal(await cell.textContent(), FOREIGN);
    // Numbers and their units stay on one line (the bytes column read '7.4' over 'KiB').
    const wrapped =
      (await page.evaluate(`[...document.querySelectorAll('#view-edges td.num')].filter((td) => {
      const range = document.createRange();
      range.selectNodeContents(td);
      return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size > 1;
    }).map((td) => td.textContent)`)) as string[];
    assert.deepEqual(wrapped, []);
  } finally {
    await page.close();
  }
});

test('a table scrolled sideways on a phone stays where the user put it across live redraws', {
  skip,
}, async () => {
  const page = await open('edges', 390, 844, true);
  try {
    // The first draws may come before every sidecar has been read, with a table too narrow to
    // scroll 200 px: wait until it can. Each step finds the table in the same turn of the page's
    // loop as it uses it: a locator resolved first can be handed an element a redraw has just
    // replaced (detached, so its scrollLeft reads 0), which made this test flaky in CI.
    await page.locator(`tr[data-edge="${FOREIGN}→web:8080"]`).waitFor();
    const scrollable = await page
      .waitForFunction(
        () => {
          const el = (globalThis as any).document.querySelector('#view-edges .scroll');
          return el !== null && el.scrollWidth - el.clientWidth >= 200;
        },
        undefined,
        { timeout: 10_000 },
      )
      .then(
        () => true,
        () => false,
      );
    assert.ok(scrollable, 'the edges table on a phone does not scroll 200 px');
    const scrolledTo = await page.evaluate(() => {
      const el = (globalThis as any).document.querySelector('#view-edges .scroll');
      el.scrollLeft = 200;
      (globalThis as any).__table = el.querySelector('table');
      return el.scrollLeft;
    });
    assert.equal(scrolledTo, 200);
    await page.waitForFunction(() => !(globalThis as any).__table.isConnected);
    const kept = await page.evaluate(
      () => (globalThis as any).document.querySelector('#view-edges .scroll').scrollLeft,
    );
    assert.equal(kept, 200);
  } finally {
    await page.close();
  }
});

test('a failing renewal says why, in red, and its renewal time long past is amber', { skip }, async () => {
  const page = await open('certificates', 1280, 800);
  try {
    const row = page.locator(`tr[data-cert="${LONG}"]`);
    await row.waitFor();
    assert.match(await row.locator('.pill').innerText(), /warning/);
    assert.match(
      await row.locator('.renewal.failed').innerText(),
      /failed \d+s ago\s+the identity service did not answer \(MUTUAL_WORKLOAD_CERTIFY_FAILED\)/,
    );
    const renews = row.locator('td:nth-child(5) .countdown');
    assert.match((await renews.getAttribute('class')) ?? '', /\bwarning\b/, 'the renewal time, 15 min past');
    assert.match(await renews.innerText(), /^1[45]m \d+s ago$/);
    const web = page.locator('tr[data-cert="web"]');
    assert.equal(await web.locator('.renewal.failed').count(), 0);
    assert.equal(await web.locator('.countdown.warning, .countdown.critical').count(), 0);
  } finally {
    await page.close();
  }
});

test('a short-lived certificate that expired past its renewal time has the renewal time in red too', {
  skip,
}, async () => {
  const page = await open('certificates', 1280, 800);
  try {
    // One page task: a live redraw between finding the row and reading it would detach it.
    const cells = async () =>
      (await page.evaluate(`(() => {
        const row = document.querySelector('tr[data-cert="cache"]');
        return row ? [...row.querySelectorAll('.pill, .countdown')].map((el) => el.className + ': ' + el.textContent) : null;
      })()`)) as string[] | null;
    let found = await cells();
    for (let i = 0; found === null && i < 50; i++) {
      await page.waitForTimeout(100);
      found = await cells();
    }
    assert.ok(found, 'the cache row');
    assert.equal(found[0], 'pill expired: expired');
    assert.match(found[1]!, /^countdown expired: 3\ds ago$/);
    // 48 s overdue: under the minute that makes an overdue renewal amber, but the certificate it
    // did not replace has expired (was green, 'countdown ok').
    assert.match(found[2]!, /^countdown expired: [45]\ds ago$/);
  } finally {
    await page.close();
  }
});

for (const colorScheme of ['light', 'dark'] as const) {
  test(`${colorScheme} scheme: status and body text have at least 4.5:1 contrast`, { skip }, async () => {
    const page = await open('certificates', 1280, 800, false, colorScheme);
    try {
      await page.locator('.pill.critical').first().waitFor();
      // The page follows the reader's scheme: a dark desktop gets dark pages and cards, not a white glare.
      const surfaces = (await page.evaluate(
        "[document.documentElement, document.querySelector('.panel, .card'), document.querySelector('nav')].map((el) => getComputedStyle(el).backgroundColor)",
      )) as string[];
      for (const surface of surfaces) {
        const [r, g, b] = (surface.match(/[\d.]+/g) ?? []).map(Number) as [number, number, number];
        assert.equal(
          (r + g + b) / 3 < 64,
          colorScheme === 'dark',
          `${colorScheme} scheme: a surface is ${surface}`,
        );
      }
      const seen = new Set<string>();
      for (const tab of ['certificates', 'edges']) {
        await page.locator(`#tabs a[data-tab="${tab}"]`).click();
        await page.locator(`#view-${tab} .pill`).first().waitFor();
        // Queried and measured in one task: a live redraw in between would detach the elements.
        const contrasts = await page.evaluate(() => {
          const doc = (globalThis as any).document;
          const els: any[] = [
            ...doc.querySelectorAll(
              'main section:not([hidden]) :is(.pill, .countdown, td, th, .id, .meta, .renewal-error, .denied), #tabs a, .mesh-name',
            ),
          ];
          const rgb = (color: string) => (color.match(/[\d.]+/g) ?? []).map(Number);
          const luminance = ([r, g, b]: number[]) => {
            const [x, y, z] = [r!, g!, b!].map((v) => {
              const c = v / 255;
              return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
            });
            return 0.2126 * x! + 0.7152 * y! + 0.0722 * z!;
          };
          return els.map((el) => {
            let back = el;
            let background = 'rgba(0, 0, 0, 0)';
            while (back && /rgba\(.*, 0\)|transparent/.test(background)) {
              background = (globalThis as any).getComputedStyle(back).backgroundColor;
              back = back.parentElement;
            }
            const [a, b] = [
              luminance(rgb((globalThis as any).getComputedStyle(el).color)),
              luminance(rgb(background)),
            ];
            return {
              what: `${el.className} ${el.textContent}`,
              ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
            };
          });
        });
        for (const { what, ratio } of contrasts) {
          seen.add(what.split(' ').slice(0, 2).join(' '));
          assert.ok(ratio >= 4.5, `${what}: ${ratio.toFixed(2)}:1`);
        }
      }
      // Every kind of status text was among them.
      for (const kind of [
        'pill ok',
        'pill warning',
        'pill critical',
        'pill secured',
        'countdown ok',
        'countdown warning',
      ])
        assert.ok(seen.has(kind), `${kind} not checked: ${[...seen].join(', ')}`);
    } finally {
      await page.close();
    }
  });
}

test('the graph on a phone keeps its names readable and scrolls sideways instead', { skip }, async () => {
  const page = await browser.newPage({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
  });
  try {
    await page.goto(`${dashboard.url}#topology`);
    await page.locator('svg.topology g.node text:not(.ns)').first().waitFor();
    // Found and measured in one page task: a live redraw in between would detach the node.
    const height = (await page.evaluate(
      "document.querySelector('svg.topology g.node text:not(.ns)').getBoundingClientRect().height",
    )) as number;
    assert.ok(height >= 10, `a service name ${height.toFixed(1)} px tall`);
    // Each legend entry keeps its swatch and words on one line (was 'mTLS, denied by policy' on three).
    const entries = (await page.evaluate(
      `[...document.querySelectorAll('#view-topology .legend span')].filter((s) => s.querySelector('i')).map((s) => s.textContent + ' ' + s.getClientRects().length + ' ' + Math.round(s.getBoundingClientRect().height))`,
    )) as string[];
    assert.equal(entries.length, 3);
    for (const entry of entries) assert.ok(Number(entry.split(' ').at(-1)) < 24, entry);
    const [scrollWidth, clientWidth] = (await page.evaluate(
      '[document.documentElement.scrollWidth, document.documentElement.clientWidth]',
    )) as [number, number];
    assert.ok(scrollWidth <= clientWidth, 'only the graph scrolls, not the page');
  } finally {
    await page.close();
  }
});

test("an edge's denials stand out beside its success rate, and a certificate's end reads as a UTC time", {
  skip,
}, async () => {
  const page = await open('edges', 1280, 800);
  try {
    const denied = page.locator(`tr[data-edge="cart→web:8080"] .denied`);
    await denied.waitFor();
    assert.equal(await denied.innerText(), '4');
    // An edge without HTTP requests gives its connections per second (was '0.0/s', as if idle).
    const rates = await page.waitForFunction(
      (foreign) => {
        const cell = (edge: string) =>
          (globalThis as any).document.querySelector(`tr[data-edge="${edge}"] td:nth-child(7)`)?.textContent;
        const both = [cell(`${foreign}→web:8080`), cell('cart→web:8080')];
        return both.every((text) => text && text !== '—') && both;
      },
      FOREIGN,
      { timeout: 10_000 },
    );
    assert.deepEqual(await rates.jsonValue(), ['0.0 conn/s', '0.0/s']);
    // Counts are grouped by thousands (was 12345).
    assert.equal(await page.locator(`tr[data-edge="cart→web:8080"] td:nth-child(9)`).innerText(), '12,345');
    await page.locator('#tabs a[data-tab="overview"]').click();
    const workloads = page.locator('.card', { hasText: 'Meshed workloads' }).locator('.sub');
    await workloads.waitFor();
    // One unmeshed peer (the foreign client), in the singular (was '1 unmeshed peers').
    assert.match(await workloads.innerText(), /^0 sidecars not answering · 1 unmeshed peer$/);
    // It names the policy that decided, as the Policy tab does (was 'refused by policy').
    assert.match((await denied.getAttribute('title')) ?? '', /^refused by shop\/web-callers \(a 403/);
    // An edge without denials keeps a plain 0.
    assert.equal(await page.locator(`tr[data-edge="${FOREIGN}→web:8080"] .denied`).count(), 0);
    // On the graph too: the edge whose calls are refused is amber, not the green of a healthy one.
    await page.locator('#tabs a[data-tab="topology"]').click();
    await page.locator('svg.topology path.edge').first().waitFor();
    const classes = (await page.evaluate(
      `[...document.querySelectorAll('svg.topology path.edge')].map((p) => p.getAttribute('data-edge') + ' ' + p.getAttribute('class')).sort()`,
    )) as string[];
    assert.ok(classes.includes('cart→web:8080 edge secured denied'), classes.join('\n'));
    assert.ok(classes.includes(`${FOREIGN}→web:8080 edge secured`), classes.join('\n'));
    await page.locator('#tabs a[data-tab="certificates"]').click();
    const notAfter = page.locator('tr[data-cert="issuer"] td:nth-child(5) .id');
    await notAfter.waitFor();
    assert.match(await notAfter.innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.match((await notAfter.getAttribute('title')) ?? '', /^\d{4}-\d\d-\d\dT.*Z$/);
  } finally {
    await page.close();
  }
});

test('the Edges tab heads its share of requests below 500 Non-5xx, not Success, and says what each count is', {
  skip,
}, async () => {
  const page = await open('edges', 1280, 800);
  try {
    await page.locator('tr[data-edge="cart→web:8080"] .denied').waitFor();
    const headers = (await page.evaluate(
      "[...document.querySelectorAll('#view-edges thead th')].map((th) => th.textContent + '|' + (th.getAttribute('title') || ''))",
    )) as string[];
    const byName = Object.fromEntries(headers.map((header) => header.split('|') as [string, string]));
    // Was 'Success': "Success 100%" beside "Denied 4" of 4 requests read as if the denied calls had succeeded.
    assert.ok(!('SUCCESS' in byName) && !('Success' in byName), headers.join('\n'));
    assert.match(byName['Non-5xx'] ?? '', /below 500.*denied by policy is answered 403/);
    assert.match(byName.Denied ?? '', /of Reqs/);
    assert.match(byName.Reqs ?? '', /destination's sidecar/);
  } finally {
    await page.close();
  }
});

test("a sidecar of a mesh without policyDir is set by mesh.yaml's mode, not by a flag the user never gave", {
  skip,
}, async () => {
  const page = await open('policy', 1280, 800);
  try {
    // Was 'STRICT --mode flag': mutual up passes mesh.yaml's mode as --mode.
    assert.match(
      await page.locator('tr[data-mode="cache"]').innerText(),
      /^cache\s+shop\s+8080\s+PERMISSIVE\s+mode in mesh\.yaml \(no policyDir\)\s+—$/,
    );
  } finally {
    await page.close();
  }
});

test('a link to the Policy tab on a phone shows that tab in the tab bar', { skip }, async () => {
  const page = await open('policy', 390, 844, true);
  try {
    // Was off screen: the bar scrolled to its start, showing Overview … Certificates.
    const [left, right] = (await page.evaluate(
      "(() => { const r = document.querySelector('#tabs a[data-tab=policy]').getBoundingClientRect(); return [r.left, r.right]; })()",
    )) as [number, number];
    assert.ok(left >= 0 && right <= 390, `the Policy tab is at ${left}..${right} px`);
  } finally {
    await page.close();
  }
});

test('on a phone an identity breaks only after a /, and a fingerprint not at all', { skip }, async () => {
  const page = await open('certificates', 390, 844, true);
  try {
    await page.locator('tr[data-cert="cart"] .id').waitFor();
    // Each part between slashes is its own text node: one that spans two lines was split.
    const split =
      (await page.evaluate(`[...document.querySelectorAll('tr[data-cert="anchor"] td:nth-child(2) .id, tr[data-cert="cart"] .id')]
      .flatMap((span) => [...span.childNodes].filter((node) => node.nodeType === 3))
      .filter((node) => {
        const range = document.createRange();
        range.selectNodeContents(node);
        return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size > 1;
      })
      .map((node) => node.textContent)`)) as string[];
    // Was ['82790b6bd16b9454']: the squeezed column split the anchor's fingerprint (and on the
    // demo 'emojivot' over 'o/'), as a line break anywhere let the table shrink it to one character.
    assert.deepEqual(split, []);
  } finally {
    await page.close();
  }
});
