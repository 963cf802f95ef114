// A real sidecar's admin port (on 0.0.0.0, as in a pod) against hostile peers: a request target
// that is not a URL, POST /shutdown from another machine, from a web page or with the wrong
// method, /identity read for key material, and HTTP/2 clients sending a new :method every request.
// The sidecar stays up and ready through all of it, /metrics stays strict Prometheus text, and a
// plain POST /shutdown from loopback still drains it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect, createServer, type Http2Server } from 'node:http2';
import { type AddressInfo, connect as tcpConnect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestPki,
  type ProxyProcess,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';
import { parseStrictPrometheusText } from '../../src/testing/strict-prometheus-text.ts';

/** An address of this machine that is not loopback, to connect from as "another machine". */
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((address) => address && address.family === 'IPv4' && !address.internal)?.address;

let dir: string;
let app: Http2Server;
let proxy: ProxyProcess;
let emoji: WorkloadFiles;
let adminPort: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-admin-hostile-'));
  const pki = await createTestPki(join(dir, 'pki'));
  emoji = await pki.workload('emoji');
  app = createServer().on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.end(`method ${String(headers[':method']).length} bytes`);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  proxy = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...['--inbound', `127.0.0.1:0=${(app.address() as AddressInfo).port}`, '--mode', 'PERMISSIVE'],
    ...['--admin-listen', '0.0.0.0:0'],
  ]);
  adminPort = Number(new URL(proxy.adminUrl).port);
  await proxy.untilReady();
});

after(async () => {
  await proxy?.stop();
  app?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One request to the admin port from `host`; resolves with the status and body. */
function admin(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  host = '127.0.0.1',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: adminPort, method, path, headers, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function assertStillReady() {
  assert.equal(proxy.child.exitCode, null, proxy.output());
  assert.equal((await admin('GET', '/ready')).status, 200);
}

test('a request target that is not a URL is a 400, and the sidecar lives on', async () => {
  const answer = await new Promise<string>((resolve) => {
    const socket = tcpConnect(adminPort, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
    socket.end('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  });
  assert.match(answer, /^HTTP\/1\.1 400 /);
  await assertStillReady();
});

test('POST /shutdown is refused from another machine', {
  skip: externalAddress ? false : 'this machine has no non-loopback IPv4 address',
}, async () => {
  const remote = await admin('POST', '/shutdown', {}, externalAddress);
  assert.equal(remote.status, 403);
  assert.match(remote.body, /only accepted from localhost/);
  await assertStillReady();
});

test('POST /shutdown is refused from a web page, and other methods are 405', async () => {
  // A page in a browser on this machine reaches loopback too (a fetch() with mode: 'no-cors').
  const fromPages: Record<string, string>[] = [
    { origin: 'https://evil.example' },
    { 'sec-fetch-site': 'cross-site' },
    { origin: 'null' },
  ];
  for (const headers of fromPages) {
    const page = await admin('POST', '/shutdown', headers);
    assert.equal(page.status, 403, JSON.stringify(headers));
    assert.match(page.body, /not accepted from a web page/);
  }
  for (const method of ['GET', 'PUT', 'DELETE']) {
    assert.equal((await admin(method, '/shutdown')).status, 405, method);
  }
  await assertStillReady();
});

test('/identity shows the certificate chain and the bundle, never the private key', async () => {
  const { status, body } = await admin('GET', '/identity');
  assert.equal(status, 200);
  const identity = JSON.parse(body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(identity).sort(), [
    'certificateChainPem',
    'lastRenewal',
    'notAfter',
    'notBefore',
    'renewAt',
    'roots',
    'spiffeId',
    'trustBundlePem',
  ]);
  assert.equal(identity.spiffeId, emoji.spiffeId);
  assert.doesNotMatch(body, /PRIVATE KEY/);
  const keyBase64 = (await readFile(emoji.keyFile, 'utf8')).split('\n').slice(1, -2).join('');
  assert.ok(!body.replace(/\\n/g, '').includes(keyBase64.slice(0, 40)), 'the key material is in /identity');
});

test('HTTP/2 clients sending made-up :methods add one `other` series, not one per method', async () => {
  const session = connect(`http://127.0.0.1:${proxy.inbound[0]!.port}`);
  session.on('error', () => {});
  const methods = ['GET', 'POST', ...Array.from({ length: 40 }, (_, i) => `M${i}${'X'.repeat(i * 100)}`)];
  for (const method of methods) {
    const stream = session.request({ ':method': method, ':path': '/' });
    stream.on('error', () => {});
    stream.resume();
    stream.end();
    await once(stream, 'close');
    assert.equal(stream.rstCode, 0, method.slice(0, 10));
  }
  session.close();
  const samples = parseStrictPrometheusText(await proxy.metrics()).filter(
    (sample) => sample.name === 'mutual_inbound_http_requests_total',
  );
  const byMethod = Object.fromEntries(samples.map((sample) => [sample.labels.method, sample.value]));
  assert.deepEqual(byMethod, { GET: 1, POST: 1, other: 40 });
  await assertStillReady();
});

test('a plain POST /shutdown from loopback drains the sidecar', async () => {
  const exited = once(proxy.child, 'exit');
  const answer = await admin('POST', '/shutdown');
  assert.equal(answer.status, 202);
  const [code] = await exited;
  assert.equal(code, 0, proxy.output());
});
