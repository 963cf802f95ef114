// A hostile peer cannot fill the disk through a sidecar's log: a flood of garbage connections,
// plaintext on a STRICT port, refused handshakes or denied requests writes the first line of each
// kind at once, with its details, and sums the rest up later (every 10 s), while the metrics still
// count every one. A different kind (another reason, another client denied) is logged at once.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  metricValue,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
  waitUntil,
} from '../../src/testing/mesh-pki.ts';

const FLOOD = 300;

type Caller = WorkloadFiles & { certPem: string; keyPem: string };

const ALLOW_ADMIN_ONLY = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: emoji-callers, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/demo/sa/admin"] } }]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: emoji-strict, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  mtls: { mode: STRICT }
`;

/** Opens a TCP connection, sends `bytes`, half-closes and waits for the proxy to close it. */
function sendAndClose(port: number, bytes: Buffer | string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.resume();
  });
}

/** A TLS client with `files`' certificate (or none), closed once the proxy closes it. */
function tlsClient(port: number, files: Caller | undefined, bundle: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      port,
      host: '127.0.0.1',
      ca: bundle,
      checkServerIdentity: () => undefined,
      ...(files ? { cert: files.certPem, key: files.keyPem } : {}),
    });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.resume();
  });
}

/** `count` requests, one after the other on one mTLS keep-alive connection, as `caller`. */
async function requestsAs(caller: Caller, port: number, bundle: string, count: number) {
  const statuses: number[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < count; i++) {
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          const request = httpsRequest(
            {
              host: '127.0.0.1',
              port,
              path: `/emoji/${i}`,
              agent,
              ca: bundle,
              cert: caller.certPem,
              key: caller.keyPem,
              checkServerIdentity: () => undefined,
            },
            (response) => {
              response.resume();
              response.on('end', () => resolve(response.statusCode ?? 0));
            },
          );
          request.on('error', reject);
          request.end();
        }),
      );
    }
  } finally {
    agent.destroy();
  }
  return statuses;
}

async function inBatches(count: number, one: () => Promise<void>) {
  for (let done = 0; done < count; done += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - done) }, one));
  }
}

describe('a sidecar under a flood of refused connections and requests', () => {
  let dir: string;
  let app: Server;
  let server: ProxyProcess;
  let bundle: string;
  let strictPort: number;
  let web: Caller;
  let attacker: Caller;
  let foreign: Caller;

  /** The JSON lines the proxy wrote with this exact message (not the summaries). */
  const linesOf = (message: string) =>
    server
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === message);
  const metric = async (name: string, labels: Record<string, string>) =>
    metricValue(await server.metrics(), name, labels);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mutual-log-flood-'));
    const policyDir = join(dir, 'policies');
    await mkdir(policyDir);
    await writeFile(join(policyDir, 'emoji.yaml'), ALLOW_ADMIN_ONLY);
    const pki = await createTestPki(join(dir, 'pki'));
    const otherPki = await createTestPki(join(dir, 'other-pki'));
    const withPem = async (files: WorkloadFiles): Promise<Caller> => ({
      ...files,
      certPem: await readFile(files.certFile, 'utf8'),
      keyPem: await readFile(files.keyFile, 'utf8'),
    });
    const emoji = await pki.workload('emoji');
    web = await withPem(await pki.workload('web'));
    attacker = await withPem(await pki.workload('attacker'));
    foreign = await withPem(await otherPki.workload('foreign'));
    bundle = await readFile(pki.bundleFile, 'utf8');
    app = createServer((request, response) => response.end(`ok ${request.url}`));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const appPort = (app.address() as AddressInfo).port;
    server = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `127.0.0.1:0=${appPort}`, '--detect-timeout', '2s'],
      ...['--policy-dir', policyDir, '--label', 'app=emoji', '--admin-listen', '127.0.0.1:0'],
    ]);
    await server.untilReady();
    strictPort = server.inbound[0]!.port;
  });

  after(async () => {
    await server?.stop();
    app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('garbage after a TLS record header: every handshake failure counted, a few lines logged', async () => {
    const labels = { direction: 'inbound' };
    const before = await metric('mutual_tls_handshake_failures_total', labels);
    const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20]), Buffer.alloc(32, 0x41)]);
    await inBatches(FLOOD, () => sendAndClose(strictPort, garbage));
    await waitUntil(
      async () => (await metric('mutual_tls_handshake_failures_total', labels)) - before >= FLOOD,
      `${FLOOD} handshake failures counted`,
    );
    assert.equal((await metric('mutual_tls_handshake_failures_total', labels)) - before, FLOOD);
    const lines = linesOf('inbound TLS handshake failed');
    assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} lines for ${FLOOD} connections`);
    assert.equal(lines[0]!.level, 'warn');
    assert.equal(lines[0]!.client, '127.0.0.1');
    assert.equal(typeof lines[0]!.reason, 'string');
    assert.match(String(lines[0]!.error), /\S/);
  });

  test('plaintext on a STRICT port: every connection refused and counted, one line naming the port and client', async () => {
    const labels = { reason: 'plaintext_strict' };
    const before = await metric('mutual_inbound_refused_total', labels);
    await inBatches(FLOOD, () => sendAndClose(strictPort, 'GET / HTTP/1.1\r\nHost: emoji\r\n\r\n'));
    await waitUntil(
      async () => (await metric('mutual_inbound_refused_total', labels)) - before >= FLOOD,
      `${FLOOD} plaintext connections refused`,
    );
    assert.equal((await metric('mutual_inbound_refused_total', labels)) - before, FLOOD);
    const lines = linesOf('plaintext refused on a STRICT port');
    assert.equal(lines.length, 1, `${lines.length} lines for ${FLOOD} connections`);
    assert.equal(lines[0]!.client, '127.0.0.1');
    assert.equal(typeof lines[0]!.port, 'number');
  });

  test('clients without a certificate: all counted, one line; a client from another CA is logged at once', async () => {
    const labels = { direction: 'inbound', reason: 'no_client_certificate' };
    const before = await metric('mutual_tls_handshake_failures_total', labels);
    const count = FLOOD / 3;
    await inBatches(count, () => tlsClient(strictPort, undefined, bundle));
    await waitUntil(
      async () => (await metric('mutual_tls_handshake_failures_total', labels)) - before >= count,
      `${count} clients refused`,
    );
    assert.equal((await metric('mutual_tls_handshake_failures_total', labels)) - before, count);
    const refused = linesOf('inbound client refused');
    assert.equal(refused.length, 1, `${refused.length} lines for ${count} clients`);
    assert.equal(refused[0]!.reason, 'no_client_certificate');
    assert.equal(refused[0]!.client, '127.0.0.1');

    // Another reason is another kind: written now, not in the summary ten seconds later.
    await tlsClient(strictPort, foreign, bundle);
    await waitUntil(async () => linesOf('inbound client refused').length === 2, 'the foreign client logged');
    assert.notEqual(linesOf('inbound client refused')[1]!.reason, 'no_client_certificate');
  });

  test('denied requests: the first denial of each client and policy at once, repeats counted', async () => {
    const labels = { decision: 'deny', policy: 'demo/emoji-callers', client_id: web.spiffeId };
    const before = await metric('mutual_authorization_decisions_total', labels);
    const count = 40;
    assert.deepEqual(await requestsAs(web, strictPort, bundle, count), Array(count).fill(403));
    assert.equal((await metric('mutual_authorization_decisions_total', labels)) - before, count);
    const webDenials = () => linesOf('request denied').filter((line) => line.client === web.spiffeId);
    assert.equal(webDenials().length, 1, `${webDenials().length} lines for ${count} denials`);
    assert.equal(webDenials()[0]!.policy, 'demo/emoji-callers');
    assert.equal(webDenials()[0]!.path, '/emoji/0');

    // Another client denied by the same policy is logged as soon as it is denied.
    assert.deepEqual(await requestsAs(attacker, strictPort, bundle, 3), [403, 403, 403]);
    await waitUntil(
      async () => linesOf('request denied').some((line) => line.client === attacker.spiffeId),
      "the attacker's first denial logged",
    );
    assert.equal(linesOf('request denied').filter((line) => line.client === attacker.spiffeId).length, 1);
  });
});
