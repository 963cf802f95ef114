// TLS scanners pointed at every HTTPS/mTLS port of Mutual, as an auditor would: nmap's
// ssl-enum-ciphers, ssl-heartbleed, ssl-ccs-injection and ssl-dh-params scripts (each run takes
// well under a second; testssl.sh and sslscan, which report the same, take a minute and are run by
// hand: docs/security.md has their findings) against a sidecar's STRICT inbound, the destination
// and identity services and the injector webhook. What the scan must find: TLS 1.3 only on the
// mesh's ports, and on the webhook (TLS 1.2 for the API server) no suite without forward secrecy
// or AEAD; what it must leave behind: every daemon serving, its refusals in a few sampled lines
// that name the reason and not OpenSSL's source file, and on the webhook a count of them.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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
import { createDestinationFixture, type DestinationFixture } from '../e2e/destination-daemon.ts';
import {
  createCa,
  type IdentityServiceProcess,
  type MutualDaemon,
  startIdentityService,
} from '../e2e/run-mutual.ts';
import { type InjectServeProcess, startInjectServe, writeWebhookFiles } from '../k8s/webhook-harness.ts';

const toolMissing = (command: string, args: string[]) =>
  spawnSync(command, args, { stdio: 'ignore' }).status === 0 ? undefined : `${command} is not installed`;
const nmapMissing = toolMissing('nmap', ['--version']);
const opensslMissing = toolMissing('openssl', ['version']);

/** nmap's TLS scripts against 127.0.0.1:`port`: the protocol versions and suites it lists, and its whole output. */
async function nmapTls(port: number): Promise<{ versions: string[]; suites: string[]; text: string }> {
  const child = spawn(
    'nmap',
    [
      ...['-Pn', '-n', '-p', String(port)],
      ...['--script', 'ssl-enum-ciphers,ssl-heartbleed,ssl-ccs-injection,ssl-dh-params'],
      '127.0.0.1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, text);
  assert.match(text, /ssl-enum-ciphers/, `nmap saw no TLS on ${port}:\n${text}`);
  const versions = [...text.matchAll(/^\|\s+((?:TLS|SSL)v[\d.]+):/gm)].map((match) => match[1]!);
  const suites = [...text.matchAll(/^\|\s+(TLS_\w+)/gm)].map((match) => match[1]!);
  return { versions, suites, text };
}

/** A log that a scan left readable: no OpenSSL source path, no message broken over lines. */
function assertNoOpensslInternals(log: string, what: string) {
  assert.doesNotMatch(
    log,
    /\.\.\/deps\/openssl|statem_srvr\.c|\\n"/,
    `${what} logged OpenSSL internals:\n${log}`,
  );
}

async function live(adminUrl: string | URL): Promise<number> {
  return (await fetch(new URL('/live', adminUrl))).status;
}

describe('TLS scanners against every TLS port', { skip: nmapMissing }, () => {
  let dir: string;
  let app: Server;
  let sidecar: ProxyProcess;
  let destination: DestinationFixture;
  let destinationDaemon: MutualDaemon;
  let identity: IdentityServiceProcess;
  let webhook: InjectServeProcess;
  let otherCaFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-attack-tools-tls-'));
    const pki = await createTestPki(join(dir, 'pki'));
    const emoji = await pki.workload('emoji');
    otherCaFile = (await createTestPki(join(dir, 'other'), 'other.example')).bundleFile;
    app = createServer((_request, response) => response.end('ok'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const appPort = (app.address() as AddressInfo).port;
    await createCa(join(dir, 'ca'));
    const files = {
      certFile: join(dir, 'webhook.crt'),
      keyFile: join(dir, 'webhook.key'),
      anchorsFile: join(dir, 'anchors.pem'),
    };
    await writeWebhookFiles(pki, files);
    destination = await createDestinationFixture('mutual-attack-tools-destination-');
    [sidecar, destinationDaemon, identity, webhook] = await Promise.all([
      startProxyProcess([
        ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
        ...['--inbound', `127.0.0.1:0=${appPort}`, '--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
      ]),
      destination.start(),
      startIdentityService(join(dir, 'ca'), join(dir, 'state')),
      startInjectServe(files),
    ]);
    await sidecar.untilReady();
  });

  after(async () => {
    webhook?.child.kill('SIGTERM');
    await Promise.all([sidecar?.stop(), identity?.stop(), destination?.close()]);
    app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the mesh ports offer TLS 1.3 only, no known weakness, and log the scan readably', async () => {
    const targets: [string, number, () => string][] = [
      ['sidecar inbound (STRICT)', sidecar.inbound[0]!.port, () => sidecar.output()],
      ['destination service', Number(destinationDaemon.apiUrl.port), () => destinationDaemon.output()],
      ['identity service', Number(identity.apiUrl.port), () => identity.output()],
    ];
    for (const [what, port, output] of targets) {
      const scan = await nmapTls(port);
      assert.deepEqual(scan.versions, ['TLSv1.3'], `${what}:\n${scan.text}`);
      assert.ok(scan.suites.length > 0, `${what}: no suite listed:\n${scan.text}`);
      assert.doesNotMatch(scan.text, /VULNERABLE/, `${what}:\n${scan.text}`);
      // nmap grades each suite; anything below A (e.g. no forward secrecy) is a finding.
      assert.match(scan.text, /least strength: A/, `${what}:\n${scan.text}`);
      assertNoOpensslInternals(output(), what);
    }
    // The scan refused TLS 1.2 and older; the destination service's line says so in words.
    await waitUntil(
      async () =>
        /client TLS handshake refused.*unsupported protocol: the client offered only TLS 1\.2/.test(
          destinationDaemon.output(),
        ),
      'the destination service to log the refused TLS 1.2 ClientHello with its reason',
    );
    assert.equal(await sidecar.untilReady(), undefined);
    assert.equal(await live(destinationDaemon.adminUrl), 200);
    assert.equal(await live(identity.adminUrl), 200);
  });

  test('the webhook offers TLS 1.2 with forward-secret AEAD suites only, and counts refused handshakes', async () => {
    const scan = await nmapTls(webhook.port);
    assert.deepEqual(scan.versions, ['TLSv1.2', 'TLSv1.3'], scan.text);
    const tls12 = scan.suites.filter((suite) => !suite.startsWith('TLS_AKE_'));
    assert.ok(tls12.length > 0, scan.text);
    for (const suite of tls12)
      assert.match(
        suite,
        /^TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_\d+_GCM_SHA\d+|CHACHA20_POLY1305_SHA256)$/,
        scan.text,
      );
    assert.doesNotMatch(scan.text, /VULNERABLE/, scan.text);
    // nmap's scan is dozens of refused handshakes: counted each, logged in a few lines.
    const text = await (await fetch(`${webhook.adminUrl}/metrics`)).text();
    assert.ok(metricValue(text, 'mutual_injector_tls_handshakes_failed_total') >= 10, text);
    const lines = webhook.stderr.split('\n').filter((line) => /TLS handshake/.test(line));
    assert.ok(lines.length >= 1 && lines.length <= 10, webhook.stderr);
    assertNoOpensslInternals(webhook.stderr, 'the webhook');
    assert.equal(await live(webhook.adminUrl), 200);
  });

  test('a client that does not trust the webhook certificate is logged with the caBundle hint', {
    skip: opensslMissing,
  }, async () => {
    // What the API server does with a caBundle that misses the issuer: alert unknown_ca.
    const client = spawnSync(
      'openssl',
      [
        ...['s_client', '-connect', `127.0.0.1:${webhook.port}`, '-tls1_3'],
        ...['-CAfile', otherCaFile, '-verify_return_error'],
      ],
      { input: '', timeout: 5000 },
    );
    assert.notEqual(client.status, 0, client.stdout.toString());
    await waitUntil(
      async () =>
        /TLS handshake from \S+ failed \[ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\]: .*caBundle/.test(webhook.stderr),
      `the webhook to log the untrusted certificate with the caBundle hint:\n${webhook.stderr}`,
    );
    const text = await (await fetch(`${webhook.adminUrl}/metrics`)).text();
    assert.ok(
      metricValue(text, 'mutual_injector_tls_handshakes_failed_total', {
        code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
      }) >= 1,
      text,
    );
  });
});
