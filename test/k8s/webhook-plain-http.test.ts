// Plain HTTP sent to the injector webhook's HTTPS port (curl http://…/inject) gets a plain-text 400
// naming MUTUAL_K8S_WEBHOOK_PLAIN_HTTP, saying that the API server calls it over HTTPS and how to
// call it by hand with curl -k https://, then the connection closes; before, the client saw an
// empty reply, and nothing was logged or counted. Each is counted in
// mutual_injector_admissions_total; the log says the first at once and sums up the rest every 10 s,
// so that a flood does not fill it. Bytes that are neither HTTP/1 nor TLS are still just closed,
// and TLS clients (the hint's own command) are served as before.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, metricValue, waitUntil } from '../../src/testing/mesh-pki.ts';
import { assertPlainHttpAnswer, curl, curlMissing, rawTcp } from '../e2e/plain-http-client.ts';
import {
  admissionReview,
  type InjectServeProcess,
  metrics,
  pod,
  startInjectServe,
  type WebhookFiles,
  writeWebhookFiles,
} from './webhook-harness.ts';

const CODE = 'MUTUAL_K8S_WEBHOOK_PLAIN_HTTP';
let dir: string;
let webhook: InjectServeProcess;
let port: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-plain-http-'));
  const files: WebhookFiles = {
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    anchorsFile: join(dir, 'anchors.pem'),
  };
  await writeWebhookFiles(await createTestPki(join(dir, 'pki')), files);
  webhook = await startInjectServe(files);
  port = webhook.port;
});

after(async () => {
  const child = webhook?.child;
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  await rm(dir, { recursive: true, force: true });
});

function assertAnswer(answer: string, what: string): void {
  assertPlainHttpAnswer(
    answer,
    new RegExp(
      `^error\\[${CODE}\\]: plain HTTP was sent to the injector webhook, whose port ${port} speaks only HTTPS \\(TLS 1\\.2 or newer\\): use https:// instead of http://\\n  hint: The API server calls the webhook over HTTPS.*curl -k .*https://127\\.0\\.0\\.1:8443/inject`,
    ),
    what,
  );
}

async function plainHttpCount(): Promise<number> {
  const text = await metrics(webhook.adminUrl);
  return metricValue(text, 'mutual_injector_admissions_total', { result: 'error', reason: CODE });
}

test('curl http:// to the webhook gets a plain-text 400 saying the API server uses HTTPS; the hint’s curl -k https:// is answered', {
  skip: curlMissing,
}, async () => {
  const before = await plainHttpCount();
  // -i: the status line and headers too.
  assertAnswer(await curl(['-i', `http://127.0.0.1:${port}/inject`]), 'curl GET');
  await writeFile(join(dir, 'review.json'), admissionReview(pod(), {}, 'plain-http-1'));
  const posted = await curl([
    ...['-i', '-H', 'content-type: application/json'],
    ...['--data', `@${join(dir, 'review.json')}`, `http://127.0.0.1:${port}/inject`],
  ]);
  assertAnswer(posted, 'curl POST');
  assert.equal((await plainHttpCount()) - before, 2);
  // The first is logged at once, with where it came from.
  await waitUntil(async () => webhook.stderr.includes(`[${CODE}]`), 'the log line');
  assert.match(
    webhook.stderr,
    new RegExp(
      `inject: plain HTTP from 127\\.0\\.0\\.1:\\d+ answered 400 \\[${CODE}\\]: plain HTTP was sent to the injector webhook, whose port ${port} speaks only HTTPS`,
    ),
  );
  // The hint's command, with the port at hand, gets the AdmissionReview answered.
  const secure = await curl([
    ...['-k', '-H', 'content-type: application/json'],
    ...['--data', `@${join(dir, 'review.json')}`, `https://127.0.0.1:${port}/inject`],
  ]);
  const response = JSON.parse(secure).response;
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
    assertAnswer(await rawTcp(port, '127.0.0.1', request), request.slice(0, 20));
  }
  const flood = 40;
  const answers = await Promise.all(
    Array.from({ length: flood }, () =>
      rawTcp(port, '127.0.0.1', 'GET /inject HTTP/1.1\r\nHost: mutual-injector\r\n\r\n'),
    ),
  );
  for (const answer of answers) assertAnswer(answer, 'flood');
  assert.equal((await plainHttpCount()) - before, requests.length + flood);
  // Within the first 10 s (curl's came first), one line only; then the others summed up in one.
  assert.equal(webhook.stderr.match(/inject: plain HTTP from /g)?.length, 1, webhook.stderr);
  const summary =
    /inject: (\d+) more plain HTTP connections answered 400 \[MUTUAL_K8S_WEBHOOK_PLAIN_HTTP\] in the last 10 s\n/;
  // 10 s after the first line: longer than waitUntil waits.
  for (const deadline = performance.now() + 15_000; !summary.test(webhook.stderr); ) {
    assert.ok(performance.now() < deadline, `no summary line: ${webhook.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(Number(summary.exec(webhook.stderr)?.[1]), 1 + requests.length + flood, webhook.stderr);
  assert.equal(webhook.stderr.match(/\[MUTUAL_K8S_WEBHOOK_PLAIN_HTTP\]/g)?.length, 2, webhook.stderr);
  const text = await metrics(webhook.adminUrl);
  assert.equal(metricValue(text, 'mutual_injector_connections_open'), 0, text);
});

test('bytes that are neither HTTP/1 nor TLS are closed unanswered and not counted as plain HTTP', async () => {
  const before = await plainHttpCount();
  for (const garbage of [
    Buffer.from('hello there\r\n\r\n'),
    Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  ]) {
    assert.equal(
      await rawTcp(port, '127.0.0.1', garbage),
      '',
      `no answer to ${JSON.stringify(garbage.toString())}`,
    );
  }
  assert.equal(await plainHttpCount(), before);
});
