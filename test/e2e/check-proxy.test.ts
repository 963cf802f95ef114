// `mutual check --proxy ADDR` on the README's two-proxy example (static files, no `mutual up`),
// broken as users break it: the server's certificate file replaced by an expired one (refused, the
// old one keeps serving, /ready stays 200), then by another workload's valid certificate (its
// clients are refused with wrong_identity). Before, check had no way to look at such sidecars: it
// failed "no runtime.json" and advised `mutual up`.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';
import { runMutual } from './run-mutual.ts';

let dir: string;
let pki: TestPki;
let server: ProxyProcess;
let client: ProxyProcess;
const app = createServer((_request, response) => response.end('ok'));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-check-proxy-'));
  pki = await createTestPki(join(dir, 'pki'));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const emoji = await pki.workload('emoji');
  const live = join(dir, 'live');
  await mkdir(live);
  await copyFile(emoji.certFile, join(live, 'cert.pem'));
  await copyFile(emoji.keyFile, join(live, 'key.pem'));
  await copyFile(emoji.bundleFile, join(live, 'bundle.pem'));
  server = await startProxyProcess([
    ...[
      '--cert',
      join(live, 'cert.pem'),
      '--key',
      join(live, 'key.pem'),
      '--bundle',
      join(live, 'bundle.pem'),
    ],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--admin-listen', '127.0.0.1:0'],
  ]);
  const web = await pki.workload('web');
  client = await startProxyProcess([
    ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
    ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
    ...['--admin-listen', '127.0.0.1:0'],
  ]);
  await Promise.all([server.untilReady(), client.untilReady()]);
});

after(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  app.close();
  await rm(dir, { recursive: true, force: true });
});

/** Replaces the server's certificate and key as a finished copy (rename), as deployments do. */
async function replaceServerFiles(from: { certFile: string; keyFile: string }) {
  const live = join(dir, 'live');
  for (const [source, name] of [
    [from.keyFile, 'key.pem'],
    [from.certFile, 'cert.pem'],
  ] as const) {
    await copyFile(source, join(live, `${name}.next`));
    await rename(join(live, `${name}.next`), join(live, name));
  }
}

interface CheckJson {
  success: boolean;
  checks: Array<{
    description: string;
    status: string;
    results: Array<{ subject?: string; message: string }>;
  }>;
}

const check = (...args: string[]) =>
  runMutual(['check', '--proxy', server.adminUrl, '--proxy', new URL(client.adminUrl).host, ...args], {
    cwd: dir,
  });

test('check --proxy: a healthy pair, an expired certificate file, another workload’s certificate, an added root', async () => {
  const green = await check();
  assert.equal(green.code, 0, green.stdout + green.stderr);
  assert.match(green.stdout, /√ sidecar is ready/);
  assert.match(green.stdout, /is spiffe:\/\/cluster\.local\/ns\/demo\/sa\/emoji/);
  assert.doesNotMatch(green.stdout, /runtime\.json|mutual up/, 'no mesh checks for sidecars run by hand');

  // 1. An expired certificate: refused on reload, the old one serves on and /ready stays 200.
  const expired = await pki.workload('expired', {
    sa: 'emoji',
    atMs: Date.now() - 7_200_000,
    lifetimeMs: 3_600_000,
  });
  await replaceServerFiles(expired);
  await waitUntil(
    // The refusal of the expired pair, not of a key written before its certificate (a reload between).
    async () =>
      /"result":\s*"failed"[\s\S]*expired at/.test(await (await fetch(`${server.adminUrl}/identity`)).text()),
    'the reload refused',
  );
  const refused = await check();
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(
    refused.stdout,
    /× its last certificate reload or renewal succeeded\n\s+http:\/\/[\d.:]+: .*live\/cert\.pem is not usable .* expired at .*\n\s+it keeps serving the previous certificate, which expires in/,
  );
  assert.match(refused.stdout, /fix: .*mutual cert verify --bundle BUNDLE --cert CERT/);

  // 2. Another workload's valid certificate: loaded, and the client is refused: wrong_identity.
  const voting = await pki.workload('voting');
  await replaceServerFiles(voting);
  await waitUntil(
    async () =>
      /"spiffeId":\s*"[^"]*\/sa\/voting"/.test(await (await fetch(`${server.adminUrl}/identity`)).text()),
    'the voting certificate loaded',
  );
  const answer = await fetch(`http://127.0.0.1:${client.outbound[0]!.port}/`, {
    headers: { connection: 'close' },
  });
  assert.equal(answer.status, 502);
  const wrong = await check('-o', 'json');
  assert.equal(wrong.code, 0, wrong.stdout);
  const report = JSON.parse(wrong.stdout) as CheckJson;
  const certificate = report.checks.find((entry) => entry.description.startsWith('certificate is valid'));
  assert.ok(
    certificate?.results.some((result) =>
      result.subject?.endsWith('is spiffe://cluster.local/ns/demo/sa/voting'),
    ),
  );
  const refusals = report.checks.find((entry) => entry.description.startsWith('no mTLS connection refused'));
  assert.equal(refusals?.status, 'fail');
  const clientRefusals = refusals.results.find((result) => result.subject === client.adminUrl);
  assert.match(JSON.stringify(clientRefusals), /outbound to 127\.0\.0\.1:\d+: wrong_identity/);
  assert.equal((await check('--fail-on', 'warning')).code, 1);

  // 3. A root of another CA added to its bundle: accepted, and shown, since it widens who gets in.
  const other = await createTestPki(join(dir, 'other'));
  const bundle = join(dir, 'live', 'bundle.pem');
  await writeFile(`${bundle}.next`, (await readFile(bundle, 'utf8')) + other.anchor.certificatePem);
  await rename(`${bundle}.next`, bundle);
  await waitUntil(
    async () => /"roots":\s*2/.test(await (await fetch(`${server.adminUrl}/identity`)).text()),
    'the second root loaded',
  );
  assert.match(
    (await check()).stdout,
    /is spiffe:\/\/cluster\.local\/ns\/demo\/sa\/voting, trusting 2 roots/,
  );
});

// libfaketime (Debian's faketime package) runs one process on a clock an hour behind.
const FAKETIME_LIBRARY = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

test('check --proxy: a sidecar whose clock is an hour behind is named, with its certificate not valid yet', {
  skip: existsSync(FAKETIME_LIBRARY) ? false : 'faketime is not installed (apt-get install faketime)',
}, async () => {
  const web = await pki.workload('web-skewed', { sa: 'web' });
  const skewed = await startProxyProcess(
    [
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...[
        '--upstream',
        `127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:${server.inbound[0]!.port}`,
      ],
      ...['--admin-listen', '127.0.0.1:0'],
    ],
    { LD_PRELOAD: FAKETIME_LIBRARY, FAKETIME: '-1h' },
  );
  try {
    const result = await runMutual(['check', '--proxy', skewed.adminUrl]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(
      result.stdout,
      /× sidecar's clock agrees with this machine's\n\s+http:\/\/[\d.:]+: the sidecar's clock is 1h 0m behind this machine's/,
    );
    assert.match(result.stdout, /× sidecar is ready\n\s+.*503: not ready: .*is not valid until/);
  } finally {
    await skewed.stop();
  }
});

test('check --proxy: an address that is no sidecar admin port is a usage error; no mesh points at --proxy', async () => {
  const bad = await runMutual(['check', '--proxy', 'http://127.0.0.1:14191/metrics']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(
    bad.stderr,
    /MUTUAL_CLI_USAGE.*--proxy "http:\/\/127\.0\.0\.1:14191\/metrics" is not a sidecar's admin address/,
  );
  // The same sidecar given twice, as a URL and as host:port, is checked once.
  const twice = await runMutual([
    'check',
    '--proxy',
    server.adminUrl,
    '--proxy',
    new URL(server.adminUrl).host,
  ]);
  assert.match(twice.stdout, /√ sidecar is ready \(http:\/\/127\.0\.0\.1:\d+\)\n/);
  const noMesh = await runMutual(['check', '--state-dir', join(dir, 'nothing')]);
  assert.equal(noMesh.code, 1);
  assert.match(noMesh.stdout, /`mutual check --proxy 127\.0\.0\.1:PORT`/);
});
