// Where the proxy's certificate comes from: static files reloaded live (a bad set refused while
// the old one keeps serving), and fail-closed readiness before the first certificate.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type TestPki,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

describe('static credentials', () => {
  let dir: string;
  let pki: TestPki;
  const proxies: ProxyProcess[] = [];
  const app = createServer((_request, response) => response.end('ok'));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-creds-'));
    pki = await createTestPki(join(dir, 'pki'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    app.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('new files on disk are used for new connections; a bad set is refused and the old one serves on', async () => {
    const first = await pki.workload('emoji');
    const liveDir = join(dir, 'live');
    await rm(liveDir, { recursive: true, force: true });
    await mkdir(liveDir);
    await copyFile(first.certFile, join(liveDir, 'cert.pem'));
    await copyFile(first.keyFile, join(liveDir, 'key.pem'));
    const server = await startProxyProcess([
      ...[
        '--cert',
        join(liveDir, 'cert.pem'),
        '--key',
        join(liveDir, 'key.pem'),
        '--bundle',
        first.bundleFile,
      ],
      ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--admin-listen', '127.0.0.1:0'],
    ]);
    proxies.push(server);
    const web = await pki.workload('web');
    const client = await startProxyProcess([
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...[
        '--upstream',
        `127.0.0.1:0=${first.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`,
        '--admin-listen',
        '127.0.0.1:0',
      ],
    ]);
    proxies.push(client);
    const identity = async () =>
      (await (await fetch(`${server.adminUrl}/identity`)).json()) as { certificateChainPem: string };
    await server.untilReady();
    const before = (await identity()).certificateChainPem;
    const url = `http://127.0.0.1:${client.outbound[0]!.port}/`;
    assert.equal((await fetch(url)).status, 200);

    // Replace both files the way editors and Kubernetes do: write aside, rename into place.
    const second = await pki.workload('emoji-2', { sa: 'emoji' });
    await copyFile(second.certFile, join(liveDir, 'cert.new'));
    await copyFile(second.keyFile, join(liveDir, 'key.new'));
    await rename(join(liveDir, 'key.new'), join(liveDir, 'key.pem'));
    await rename(join(liveDir, 'cert.new'), join(liveDir, 'cert.pem'));
    await waitUntil(async () => (await identity()).certificateChainPem !== before, 'the new certificate');
    assert.equal((await identity()).certificateChainPem, await readFile(second.certFile, 'utf8'));
    assert.equal((await fetch(url, { headers: { connection: 'close' } })).status, 200);

    // A key that does not match the certificate: refused, counted, and the second set serves on.
    await writeFile(join(liveDir, 'key.pem'), await readFile(first.keyFile));
    await waitUntil(
      async () =>
        metricValue(await server.metrics(), 'mutual_proxy_certificate_renewals_total', {
          result: 'failure',
        }) >= 1,
      'the bad key to be refused',
    );
    assert.match(server.output(), /new credentials refused; the old ones keep serving/);
    assert.equal((await fetch(url, { headers: { connection: 'close' } })).status, 200);
  });
});

describe('a static certificate that expires while the proxy runs', () => {
  let dir: string;
  let proxy: ProxyProcess;
  after(async () => {
    await proxy?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('/ready turns 503 naming the expiry, /live stays 200', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-expiring-'));
    const pki = await createTestPki(join(dir, 'pki'));
    // Valid from now on for 4 s: loaded and ready first, expired soon after.
    const emoji = await pki.workload('emoji', { atMs: Date.now(), lifetimeMs: 4_000 });
    proxy = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', '127.0.0.1:0=9', '--admin-listen', '127.0.0.1:0'],
    ]);
    await proxy.untilReady();
    await waitUntil(async () => (await fetch(`${proxy.adminUrl}/ready`)).status === 503, '/ready 503');
    const ready = await fetch(`${proxy.adminUrl}/ready`);
    assert.match(
      await ready.text(),
      new RegExp(`certificate expired at ${new Date(emoji.notAfterMs).toISOString()}`),
    );
    assert.equal((await fetch(`${proxy.adminUrl}/live`)).status, 200);
  });
});

describe('fail closed before the first certificate', () => {
  let dir: string;
  let proxy: ProxyProcess;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-notready-'));
    const pki = await createTestPki(join(dir, 'pki'));
    await writeFile(join(dir, 'token'), 'not-a-token');
    proxy = await startProxyProcess([
      ...['--identity-url', 'https://127.0.0.1:1', '--token-file', join(dir, 'token')],
      ...['--spiffe-id', 'spiffe://cluster.local/ns/demo/sa/web', '--identity-bundle', pki.bundleFile],
      ...[
        '--inbound',
        '127.0.0.1:0=9',
        '--upstream',
        '127.0.0.1:0=spiffe://cluster.local/ns/demo/sa/emoji@127.0.0.1:9',
      ],
      ...['--admin-listen', '127.0.0.1:0', '--mode', 'STRICT'],
    ]);
  });
  after(async () => {
    await proxy?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('/ready is 503 with the reason, and mesh traffic is refused both ways', async () => {
    const ready = await fetch(`${proxy.adminUrl}/ready`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /no certificate yet/);
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(proxy.outbound[0]!.port, '127.0.0.1');
      socket.on('data', () => resolve('data'));
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      socket.on('close', () => resolve('closed'));
      socket.write('GET / HTTP/1.0\r\n\r\n');
    });
    assert.notEqual(outcome, 'data');
    assert.ok(
      metricValue(await proxy.metrics(), 'mutual_outbound_refused_total', { reason: 'not_ready' }) >= 1,
    );
  });
});
