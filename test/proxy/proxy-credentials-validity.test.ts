// `mutual proxy run --cert --key --bundle` and time: files nobody changes again must still be
// taken once they become valid, and a certificate that nobody replaces must be warned about
// before and when it expires (the proxy renews only what the identity service issues).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, startProxyProcess, type TestPki, waitUntil } from '../../src/testing/mesh-pki.ts';

let dir: string;
let pki: TestPki;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-credentials-validity-'));
  pki = await createTestPki(dir);
});

after(() => rm(dir, { recursive: true, force: true }));

const proxyArgs = (certFile: string, keyFile: string, bundleFile: string) => [
  ...['--cert', certFile, '--key', keyFile, '--bundle', bundleFile],
  ...['--inbound', '127.0.0.1:0=9', '--admin-listen', '127.0.0.1:0'],
];

test('a certificate not valid yet is taken once it is, with no file change and no SIGHUP', async () => {
  // As from a CA whose clock is a few seconds ahead: `mutual cert issue --skew 0s` there.
  const validFromMs = Date.now() + 3_000;
  const web = await pki.workload('web', { atMs: validFromMs, lifetimeMs: 3_600_000 });
  const proxy = await startProxyProcess(proxyArgs(web.certFile, web.keyFile, web.bundleFile));
  try {
    const early = await fetch(`${proxy.adminUrl}/ready`);
    if (Date.now() < validFromMs) {
      assert.equal(early.status, 503);
      assert.match(await early.text(), /MUTUAL_PKI_CERT_NOT_YET_VALID|not valid until/);
    }
    // Before, it stayed "not ready: … is not valid until …" for good.
    await proxy.untilReady();
    assert.match(proxy.output(), /"msg":"credentials loaded"/);
  } finally {
    await proxy.stop();
  }
});

test('a certificate nobody replaces is warned about before it expires and when it does', async () => {
  const api = await pki.workload('api', { atMs: Date.now(), lifetimeMs: 4_000 });
  const proxy = await startProxyProcess(proxyArgs(api.certFile, api.keyFile, api.bundleFile));
  try {
    await waitUntil(async () => /certificate expires soon/.test(proxy.output()), 'the expiry warning');
    const soon = proxy
      .output()
      .split('\n')
      .find((line) => line.includes('certificate expires soon'))!;
    const fields = JSON.parse(soon) as Record<string, unknown>;
    assert.equal(fields.level, 'warn');
    assert.equal(fields.spiffeId, api.spiffeId);
    assert.equal(fields.notAfter, new Date(api.notAfterMs).toISOString());
    assert.equal(fields.cert, api.certFile);
    await waitUntil(async () => /"msg":"certificate expired/.test(proxy.output()), 'the expired warning');
    const ready = await fetch(`${proxy.adminUrl}/ready`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /certificate expired at/);
  } finally {
    await proxy.stop();
  }
});
