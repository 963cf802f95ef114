// Plain HTTP sent to the destination service's mTLS port (curl http://, a client set up with
// http:// by mistake) gets a plain-text 400 naming MUTUAL_DESTINATION_PLAIN_HTTP and saying to use
// https:// with a client certificate, then the connection closes; before, the client saw an empty
// reply. Bytes that are neither HTTP/1 nor TLS (an HTTP/2 prior-knowledge preface included) are
// still just closed, and mTLS clients are served as before, clients without a certificate refused.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, metricValue, type WorkloadFiles } from '../../src/testing/mesh-pki.ts';
import { assertPlainHttpAnswer, curl, curlMissing, rawTcp, rawTls } from './plain-http-client.ts';
import { type MutualDaemon, startMutualDaemon } from './run-mutual.ts';

let dir: string;
let web: WorkloadFiles;
let destination: MutualDaemon | undefined;
let apiUrl: URL;
let adminUrl: URL;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-destination-plain-http-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const own = await pki.workload('destination', { ns: 'mutual-system' });
  web = await pki.workload('web');
  await writeFile(join(dir, 'table.yaml'), '');
  destination = await startMutualDaemon(
    [
      ...['destination', 'serve', '--file', join(dir, 'table.yaml')],
      ...['--cert', own.certFile, '--key', own.keyFile, '--bundle', own.bundleFile],
      ...['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ],
    'destination service',
  );
  apiUrl = destination.apiUrl;
  adminUrl = destination.adminUrl;
});

after(async () => {
  await destination?.stop();
  await rm(dir, { recursive: true, force: true });
});

const port = () => Number(apiUrl.port);

/** Sends `bytes` over TLS 1.3, presenting `client` if given; resolves with what came back. */
async function tlsRequest(bytes: string, client?: WorkloadFiles): Promise<string> {
  const [ca, cert, key] = await Promise.all([
    readFile(web.bundleFile, 'utf8'),
    client ? readFile(client.certFile, 'utf8') : undefined,
    client ? readFile(client.keyFile, 'utf8') : undefined,
  ]);
  return rawTls({ host: apiUrl.hostname, port: port(), ca, ...(cert ? { cert, key } : {}) }, bytes);
}

function assertAnswer(answer: string, what: string): void {
  assertPlainHttpAnswer(
    answer,
    new RegExp(
      `^error\\[MUTUAL_DESTINATION_PLAIN_HTTP\\]: plain HTTP was sent to the destination service, whose port ${port()} speaks only HTTPS with mutual TLS \\(TLS 1\\.3\\): use https:// and a client certificate\\n  hint: .*https://.*--cert`,
    ),
    what,
  );
}

async function refusedCount(reason: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', adminUrl))).text();
  return metricValue(text, 'mutual_destination_clients_refused_total', { reason });
}

test('curl http:// to the mTLS port gets a plain-text 400 saying to use https:// and a certificate', {
  skip: curlMissing,
}, async () => {
  // -i: the status line and headers too.
  assertAnswer(await curl(['-i', `http://127.0.0.1:${port()}/v1/destinations/10.0.0.11:8080`]), 'curl GET');
  const posted = await curl(['-i', '--data', 'x', `http://127.0.0.1:${port()}/v1/policies?namespace=demo`]);
  assertAnswer(posted, 'curl POST');
  // The hint's own command works: https:// with an SVID as client certificate.
  const secure = await curl([
    ...['-k', '--cert', web.certFile, '--key', web.keyFile],
    `https://127.0.0.1:${port()}/v1/destinations/10.0.0.11:8080`,
  ]);
  assert.equal(JSON.parse(secure).destination, '10.0.0.11:8080');
});

test('a raw plain HTTP request is answered, counted and closed; CONNECT and DELETE too', async () => {
  const before = await refusedCount('plain_http');
  const requests = [
    'GET /v1/destinations/10.0.0.11:8080 HTTP/1.1\r\nHost: destination\r\n\r\n',
    'HEAD /v1/policies HTTP/1.0\r\n\r\n',
    'DELETE / HTTP/1.1\r\nHost: destination\r\n\r\n',
    'CONNECT destination:8086 HTTP/1.1\r\nHost: destination:8086\r\n\r\n',
  ];
  for (const request of requests) {
    // The server closes after the answer: without that, 'close' would never come.
    assertAnswer(await rawTcp(port(), apiUrl.hostname, request), request.slice(0, 20));
  }
  assert.equal((await refusedCount('plain_http')) - before, requests.length);
});

test('bytes that are neither HTTP/1 nor TLS are closed unanswered; mTLS clients are still served', async () => {
  for (const garbage of [
    Buffer.from('hello there\r\n\r\n'),
    Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  ]) {
    assert.equal(
      await rawTcp(port(), apiUrl.hostname, garbage),
      '',
      `no answer to ${JSON.stringify(garbage.toString())}`,
    );
  }
  const get =
    'GET /v1/destinations/10.0.0.11:8080 HTTP/1.1\r\nHost: destination\r\nConnection: close\r\n\r\n';
  const served = await tlsRequest(get, web);
  assert.match(served, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"destination":"10\.0\.0\.11:8080"/);
  // Without a client certificate: refused in the handshake, no HTTP answer (plain text or other).
  assert.equal(await tlsRequest(get), '');
});
