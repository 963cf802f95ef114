// Plain HTTP sent to the injector webhook's HTTPS port (curl http://…/inject) gets a plain-text 400
// naming MUTUAL_K8S_WEBHOOK_PLAIN_HTTP, saying that the API server calls it over HTTPS and how to
// call it by hand with curl -k https://, then the connection closes; before, the client saw an
// empty reply, and nothing was logged or counted. Each is counted in
// mutual_injector_admissions_total; the log says the first at once and sums up the rest every 10 s,
// so that a flood does not fill it. Bytes that are neither HTTP/1 nor TLS are still just closed,
// and TLS clients (the hint's own command) are served as before.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { systemClock } from '../../src/clock.ts';
import { generateKeyPair, issueSvid, privateKeyToPem } from '../../src/pki/index.ts';
import { createTestPki, metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { hasCommand } from '../../src/testing/netns.ts';
import { repoRoot } from '../e2e/run-mutual.ts';

const run = promisify(execFile);
const CODE = 'MUTUAL_K8S_WEBHOOK_PLAIN_HTTP';
let dir: string;
let child: ChildProcessWithoutNullStreams;
let stderr = '';
let port: number;
let adminUrl: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-plain-http-'));
  const pki = await createTestPki(join(dir, 'pki'));
  const keys = await generateKeyPair();
  const svid = await issueSvid(pki.issuer, {
    spiffeId: 'spiffe://cluster.local/ns/mutual-system/sa/injector',
    publicKey: keys.publicKey,
    clock: systemClock,
    dnsNames: ['mutual-injector.mutual-system.svc'],
  });
  await writeFile(join(dir, 'tls.crt'), svid.chainPem);
  await writeFile(join(dir, 'tls.key'), privateKeyToPem(keys.privateKey));
  await writeFile(join(dir, 'anchors.pem'), pki.anchor.certificatePem);
  child = spawn(process.execPath, [
    join(repoRoot(), 'bin', 'mutual.js'),
    ...['inject', 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'],
    ...['--cert', join(dir, 'tls.crt'), '--key', join(dir, 'tls.key')],
    ...['--trust-anchors-file', join(dir, 'anchors.pem')],
  ]);
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await waitUntil(async () => /listening on https:\/\//.test(stdout), `the webhook to listen: ${stderr}`);
  port = Number(new URL(/listening on (https:\/\/\S+)/.exec(stdout)?.[1] ?? '').port);
  adminUrl = /\(admin (http:\/\/\S+)\)/.exec(stdout)?.[1] ?? '';
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  await rm(dir, { recursive: true, force: true });
});

/** Writes `bytes` over plain TCP; resolves with all that came back once the server closed. */
function rawTcp(bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTcp(port, '127.0.0.1');
    let received = '';
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
  });
}

function assertPlainHttpAnswer(answer: string, what: string): void {
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, what);
  assert.match(answer, /\r\ncontent-type: text\/plain; charset=utf-8\r\n/, what);
  assert.match(answer, /\r\nconnection: close\r\n/, what);
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  assert.equal(Number(/content-length: (\d+)/.exec(answer)?.[1]), Buffer.byteLength(body), what);
  assert.match(
    body,
    new RegExp(
      `^error\\[${CODE}\\]: plain HTTP was sent to the injector webhook, whose port ${port} speaks only HTTPS \\(TLS 1\\.2 or newer\\): use https:// instead of http://\\n  hint: The API server calls the webhook over HTTPS.*curl -k .*https://127\\.0\\.0\\.1:8443/inject`,
    ),
    what,
  );
}

async function plainHttpCount(): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return metricValue(text, 'mutual_injector_admissions_total', { result: 'error', reason: CODE });
}

function review(uid: string): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'demo',
      operation: 'CREATE',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'demo', annotations: { 'mutual.dev/inject': 'enabled' } },
        spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] },
      },
    },
  });
}

test('curl http:// to the webhook gets a plain-text 400 saying the API server uses HTTPS; the hint’s curl -k https:// is answered', {
  skip: hasCommand('curl') ? undefined : 'curl is not installed',
}, async () => {
  const before = await plainHttpCount();
  // -i: the status line and headers too; curl exits 0 on a 400 without --fail.
  const got = await run('curl', ['-sS', '-i', '-m', '5', `http://127.0.0.1:${port}/inject`]);
  assertPlainHttpAnswer(got.stdout, 'curl GET');
  await writeFile(join(dir, 'review.json'), review('plain-http-1'));
  const posted = await run('curl', [
    ...['-sS', '-i', '-m', '5', '-H', 'content-type: application/json'],
    ...['--data', `@${join(dir, 'review.json')}`, `http://127.0.0.1:${port}/inject`],
  ]);
  assertPlainHttpAnswer(posted.stdout, 'curl POST');
  assert.equal((await plainHttpCount()) - before, 2);
  // The first is logged at once, with where it came from.
  await waitUntil(async () => stderr.includes(`[${CODE}]`), 'the log line');
  assert.match(
    stderr,
    new RegExp(
      `inject: plain HTTP from 127\\.0\\.0\\.1:\\d+ answered 400 \\[${CODE}\\]: plain HTTP was sent to the injector webhook, whose port ${port} speaks only HTTPS`,
    ),
  );
  // The hint's command, with the port at hand, gets the AdmissionReview answered.
  const secure = await run('curl', [
    ...['-sS', '-m', '5', '-k', '-H', 'content-type: application/json'],
    ...['--data', `@${join(dir, 'review.json')}`, `https://127.0.0.1:${port}/inject`],
  ]);
  const response = JSON.parse(secure.stdout).response;
  assert.equal(response.uid, 'plain-http-1');
  assert.equal(response.patchType, 'JSONPatch');
});

test('raw plain HTTP requests are answered, counted and closed (CONNECT and DELETE too); a flood is logged once, then summed up', async () => {
  const before = await plainHttpCount();
  const requests = [
    'POST /inject HTTP/1.1\r\nHost: mutual-injector\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}',
    'HEAD /inject HTTP/1.0\r\n\r\n',
    'DELETE / HTTP/1.1\r\nHost: mutual-injector\r\n\r\n',
    'CONNECT mutual-injector:443 HTTP/1.1\r\nHost: mutual-injector:443\r\n\r\n',
  ];
  for (const request of requests) {
    // The server closes after the answer: without that, 'close' would never come.
    assertPlainHttpAnswer(await rawTcp(request), request.slice(0, 20));
  }
  const flood = 40;
  const answers = await Promise.all(
    Array.from({ length: flood }, () => rawTcp('GET /inject HTTP/1.1\r\nHost: mutual-injector\r\n\r\n')),
  );
  for (const answer of answers) assertPlainHttpAnswer(answer, 'flood');
  assert.equal((await plainHttpCount()) - before, requests.length + flood);
  // Within the first 10 s (curl's came first), one line only; then the others summed up in one.
  assert.equal(stderr.match(/inject: plain HTTP from /g)?.length, 1, stderr);
  const summary =
    /inject: (\d+) more plain HTTP connections answered 400 \[MUTUAL_K8S_WEBHOOK_PLAIN_HTTP\] in the last 10 s\n/;
  // 10 s after the first line: longer than waitUntil waits.
  for (const deadline = performance.now() + 15_000; !summary.test(stderr); ) {
    assert.ok(performance.now() < deadline, `no summary line: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(Number(summary.exec(stderr)?.[1]), 1 + requests.length + flood, stderr);
  assert.equal(stderr.match(/\[MUTUAL_K8S_WEBHOOK_PLAIN_HTTP\]/g)?.length, 2, stderr);
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  assert.equal(metricValue(text, 'mutual_injector_connections_open'), 0, text);
});

test('bytes that are neither HTTP/1 nor TLS are closed unanswered and not counted as plain HTTP', async () => {
  const before = await plainHttpCount();
  for (const garbage of [
    Buffer.from('hello there\r\n\r\n'),
    Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  ]) {
    assert.equal(await rawTcp(garbage), '', `no answer to ${JSON.stringify(garbage.toString())}`);
  }
  assert.equal(await plainHttpCount(), before);
});
