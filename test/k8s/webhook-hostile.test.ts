// The injector webhook against a hostile or broken API client, over real TLS sockets written by
// hand (what no well-behaved HTTP client sends): every request that carries a uid gets an
// AdmissionReview back with that uid, allowed set and a status saying why; what carries none
// gets an HTTP 4xx with a JSON error; the answer arrives whole; and the webhook keeps serving.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from 'node:tls';
import fastJsonPatch from 'fast-json-patch';
import { type InjectorWebhook, MAX_ADMISSION_REVIEW_BYTES } from '../../src/k8s/index.ts';
import { createTestPki, metricValue, type TestPki } from '../../src/testing/mesh-pki.ts';
import {
  admissionReview,
  metrics,
  pod,
  SERVICE_NAME,
  startWebhook,
  type WebhookFiles,
  writeWebhookFiles,
} from './webhook-harness.ts';

const { applyPatch } = fastJsonPatch;
/** The deadline for headers and body; the slow-client tests wait for it (the server's, not a sleep). */
const CLIENT_TIMEOUT_MS = 400;

let dir: string;
let pki: TestPki;
let webhook: InjectorWebhook;
let port: number;
const logLines: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-hostile-'));
  pki = await createTestPki(join(dir, 'pki'));
  const files: WebhookFiles = {
    certFile: join(dir, 'tls', 'tls.crt'),
    keyFile: join(dir, 'tls', 'tls.key'),
    anchorsFile: join(dir, 'anchors.pem'),
  };
  await mkdir(join(dir, 'tls'));
  await writeWebhookFiles(pki, files);
  webhook = await startWebhook(files, {
    clientTimeoutMs: CLIENT_TIMEOUT_MS,
    log: (line) => logLines.push(line),
  });
  port = Number(new URL(webhook.url).port);
});

after(async () => {
  webhook?.destroy();
  await rm(dir, { recursive: true, force: true });
});

interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: Record<string, unknown>;
}

/**
 * Writes `chunks` on one TLS connection (verifying the server as the API server does), ends its
 * side unless `isEnded` is false, and reads until the server closes. Returns every byte, the HTTP
 * responses in them and the socket error, if any (a reset).
 */
function exchange(
  chunks: readonly (string | Buffer)[],
  { isEnded = true }: { isEnded?: boolean } = {},
): Promise<{ raw: string; answers: HttpAnswer[]; error?: string }> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: pki.anchor.certificatePem,
      servername: SERVICE_NAME,
    });
    let error: string | undefined;
    socket.on('secureConnect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (isEnded) socket.end();
    });
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', (cause: NodeJS.ErrnoException) => {
      error = cause.code ?? cause.message;
    });
    socket.on('close', () => {
      const raw = Buffer.concat(received).toString('utf8');
      resolve({ raw, answers: parseAnswers(raw), ...(error === undefined ? {} : { error }) });
    });
  });
}

/** HTTP/1.1 responses one after another (Content-Length or chunked bodies; a 100 Continue is skipped). */
function parseAnswers(raw: string): HttpAnswer[] {
  const answers: HttpAnswer[] = [];
  let rest = raw;
  while (rest.startsWith('HTTP/1.')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd === -1) break;
    const [statusLine = '', ...lines] = rest.slice(0, headEnd).split('\r\n');
    const headers = Object.fromEntries(
      lines.map((line) => [
        line.slice(0, line.indexOf(':')).toLowerCase(),
        line.slice(line.indexOf(':') + 1).trim(),
      ]),
    );
    rest = rest.slice(headEnd + 4);
    let body = '';
    if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const sizeEnd = rest.indexOf('\r\n');
        const size = Number.parseInt(rest.slice(0, sizeEnd), 16);
        rest = rest.slice(sizeEnd + 2);
        if (!(size > 0)) {
          rest = rest.slice(2);
          break;
        }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    } else {
      const length = Number(headers['content-length'] ?? 0);
      body = rest.slice(0, length);
      rest = rest.slice(length);
    }
    const status = Number(statusLine.split(' ')[1]);
    if (status === 100) continue;
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(body);
    } catch {}
    answers.push({ status, headers, body, json });
  }
  return answers;
}

function post(body: string | Buffer, headers: Record<string, string> = {}, path = '/inject'): string {
  const length = Buffer.byteLength(body);
  const all = {
    host: SERVICE_NAME,
    'content-type': 'application/json',
    'content-length': String(length),
    ...headers,
  };
  const head = Object.entries(all)
    .filter(([, value]) => value !== '')
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return `POST ${path} HTTP/1.1\r\n${head}connection: close\r\n\r\n${body}`;
}

function review(object: unknown, request: Record<string, unknown> = {}, uid = crypto.randomUUID()): string {
  return admissionReview(object, { dryRun: false, ...request }, uid);
}

/** The one AdmissionReview answer of an exchange, checked for what the API server requires. */
async function reviewAnswer(chunks: readonly (string | Buffer)[], uid: string) {
  const { answers, raw } = await exchange(chunks);
  assert.equal(answers.length, 1, raw.slice(0, 500));
  const [answer] = answers as [HttpAnswer];
  assert.equal(answer.status, 200, answer.body);
  assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(answer.json.apiVersion, 'admission.k8s.io/v1');
  assert.equal(answer.json.kind, 'AdmissionReview');
  const response = answer.json.response as {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string };
  };
  assert.equal(response.uid, uid);
  assert.equal(typeof response.allowed, 'boolean');
  return response;
}

/** The one HTTP error answer of an exchange: its status and the JSON error's code and message. */
async function errorAnswer(chunks: readonly (string | Buffer)[], { isCutOff = false, isEnded = true } = {}) {
  const { answers, raw, error } = await exchange(chunks, { isEnded });
  // A client still sending a body the server refused may find the connection closed under it.
  if (!isCutOff)
    assert.equal(error, undefined, `the answer arrived whole, without a reset: ${raw.slice(0, 300)}`);
  assert.equal(answers.length, 1, raw.slice(0, 500));
  const [answer] = answers as [HttpAnswer];
  const body = answer.json.error as { code: string; message: string; hint: string };
  assert.ok(body?.code, `a JSON error: ${raw.slice(0, 400)}`);
  return { status: answer.status, code: body.code, message: body.message, headers: answer.headers };
}

/** The webhook still injects a well-formed review on a new connection. */
async function assertServing(): Promise<void> {
  const uid = crypto.randomUUID();
  const response = await reviewAnswer([post(review(pod(), {}, uid))], uid);
  assert.equal(response.patchType, 'JSONPatch');
}

test('a pod as large as the API server takes (a 2.5 MiB env value) is injected; a body over the cap is a 413 JSON error', async () => {
  const uid = crypto.randomUUID();
  const big = pod({
    spec: {
      containers: [
        { name: 'web', image: 'nginx', env: [{ name: 'BLOB', value: 'x'.repeat(2.5 * 1024 * 1024) }] },
      ],
    },
  });
  const response = await reviewAnswer([post(review(big, {}, uid))], uid);
  assert.equal(response.allowed, true);
  assert.equal(response.patchType, 'JSONPatch');

  const tooLarge = await errorAnswer([post(Buffer.alloc(MAX_ADMISSION_REVIEW_BYTES + 1, 0x20))], {
    isCutOff: true,
  });
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.code, 'MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE');
  assert.match(tooLarge.message, /larger than 8388608 bytes \(8 MiB\)/);
  await assertServing();
});

test('a review with a uid but no usable pod (none, a string, a list, nested 10,000 deep) is answered in a review: its uid, allowed false, a 400 status saying why', async () => {
  const cases: [string, RegExp][] = [
    [
      review(null),
      /refused pod demo\/\(unnamed\): the request for a Pod CREATE has no object, where the API server sends the Pod/,
    ],
    [review('web'), /has an object that is the string "web"/],
    [review([pod()]), /has an object that is a list/],
    [
      review(pod({ spec: { x: 'DEEP' } })).replace('"DEEP"', `${'['.repeat(10_000)}${']'.repeat(10_000)}`),
      /refused pod demo\/web: the object is nested more than 100 levels deep, which no Pod is/,
    ],
  ];
  for (const [body, message] of cases) {
    const uid = JSON.parse(body).request.uid as string;
    const response = await reviewAnswer([post(body)], uid);
    assert.equal(response.allowed, false, body.slice(0, 200));
    assert.equal(response.patch, undefined);
    assert.equal(response.status?.code, 400);
    assert.match(response.status?.message ?? '', message);
  }
  // A pod as deep as real ones get (affinity terms) is injected.
  const uid = crypto.randomUUID();
  const affinity = {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 1,
          podAffinityTerm: {
            topologyKey: 'kubernetes.io/hostname',
            labelSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] },
          },
        },
      ],
    },
  };
  const deep = await reviewAnswer([post(review(pod({ spec: { affinity } }), {}, uid))], uid);
  assert.equal(deep.patchType, 'JSONPatch');
  await assertServing();
});

test('envelopes without a uid to answer get an HTTP 400 JSON error naming the problem', async () => {
  const envelope = (request: unknown) =>
    JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
  const cases: [string, RegExp][] = [
    ['{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionRev', /the request body is not JSON/],
    ['[]', /must be a JSON object \(an AdmissionReview\)/],
    [review(pod()).replace('"AdmissionReview"', '"Pod"'), /kind "Pod" is not AdmissionReview/],
    [
      review(pod()).replace('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'),
      /"admission\.k8s\.io\/v1beta1" is not supported/,
    ],
    [envelope(null), /has no request object/],
    [envelope({ kind: { group: '', kind: 'Pod' } }), /request has no uid$/],
    [envelope({ uid: 42 }), /request has no uid: 42 is not a non-empty string/],
    [envelope({ uid: '' }), /request has no uid: "" is not a non-empty string/],
  ];
  for (const [body, message] of cases) {
    const answer = await errorAnswer([post(body)]);
    assert.equal(answer.status, 400, body.slice(0, 100));
    assert.equal(answer.code, 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID');
    assert.match(answer.message, message);
  }
  await assertServing();
});

test('what the API server may send is answered as it expects: dryRun gets the same patch (no side effects), an injected pod and a hostNetwork pod none, a Service or an ephemeralcontainers update is allowed unchanged', async () => {
  const patchOf = async (body: string) => {
    const uid = JSON.parse(body).request.uid as string;
    return reviewAnswer([post(body)], uid);
  };
  const wet = await patchOf(review(pod()));
  const dry = await patchOf(review(pod(), { dryRun: true }));
  assert.equal(dry.allowed, true);
  assert.equal(dry.patchType, 'JSONPatch');
  assert.equal(dry.patch, wet.patch);
  // The pod as the API server stores it after the patch, sent again (reinvocation): nothing to add.
  const patched = applyPatch(
    pod(),
    JSON.parse(Buffer.from(wet.patch ?? '', 'base64').toString('utf8')),
    true,
    false,
  ).newDocument;
  const injected = await patchOf(review(patched));
  assert.deepEqual([injected.allowed, injected.patch], [true, undefined]);
  const host = await patchOf(review(pod({ spec: { hostNetwork: true } })));
  assert.deepEqual([host.allowed, host.patch], [true, undefined]);
  assert.match(host.warnings?.[0] ?? '', /pod demo\/web not injected: hostNetwork: true/);
  const service = await patchOf(
    review(
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' } },
      { kind: { group: '', version: 'v1', kind: 'Service' } },
    ),
  );
  assert.deepEqual([service.allowed, service.patch], [true, undefined]);
  assert.match(service.warnings?.[0] ?? '', /Service left unchanged: only Pods are injected/);
  const ephemeral = await patchOf(review(pod(), { operation: 'UPDATE', subResource: 'ephemeralcontainers' }));
  assert.deepEqual([ephemeral.allowed, ephemeral.patch], [true, undefined]);
});

test('HTTP the API server never sends: no or another content-type, a compressed body (415), a POST without a length, HTTP/1.0 style (411, the answer whole, no reset), not HTTP (400), 20 KB of headers (431): each a JSON error, and the webhook keeps serving', async () => {
  const body = review(pod());
  const cases: [readonly string[], number, RegExp][] = [
    [
      [post(body, { 'content-type': 'text/plain' })],
      415,
      /content-type "text\/plain" is not application\/json/,
    ],
    [[post(body, { 'content-type': '' })], 415, /the request has no content-type/],
    [
      [post(body, { 'content-encoding': 'gzip' })],
      415,
      /content-encoding "gzip" is not supported: send the AdmissionReview uncompressed/,
    ],
    [
      [`POST /inject HTTP/1.0\r\nhost: ${SERVICE_NAME}\r\ncontent-type: application/json\r\n\r\n${body}`],
      411,
      /a POST without content-length \(or transfer-encoding: chunked\) has no body/,
    ],
    [
      [`POST /inject HTTP/1.1\r\nhost: ${SERVICE_NAME}\r\ncontent-type: application/json\r\n\r\n${body}`],
      411,
      /without content-length/,
    ],
    [
      ['\x16\x03\x01 this is not HTTP\r\n\r\n'],
      400,
      /the request is not HTTP\/1\.1 the webhook can read \(HPE_INVALID_METHOD\)/,
    ],
    [
      [`POST /inject HTTP/1.1\r\nhost: x\r\nx-filler: ${'a'.repeat(20_000)}\r\n\r\n`],
      431,
      /headers are larger than 16 KiB/,
    ],
  ];
  for (const [chunks, status, message] of cases) {
    const answer = await errorAnswer(chunks);
    assert.equal(answer.status, status, chunks[0]?.slice(0, 80));
    assert.equal(answer.code, 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID');
    assert.match(answer.message, message);
    assert.equal(answer.headers.connection?.toLowerCase(), 'close');
  }
  // Chunked bodies and Expect: 100-continue are HTTP/1.1 the API server may use: served.
  const uid = crypto.randomUUID();
  const chunked = review(pod(), {}, uid);
  const head = `POST /inject HTTP/1.1\r\nhost: ${SERVICE_NAME}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`;
  const size = Buffer.byteLength(chunked).toString(16);
  const served = await reviewAnswer([`${head}${size}\r\n${chunked}\r\n0\r\n\r\n`], uid);
  assert.equal(served.patchType, 'JSONPatch');
  await assertServing();
});

test("slow clients: headers or a body not complete within the webhook's deadline get a 408 JSON error, and the connection is closed", async () => {
  const slowHeaders = await errorAnswer([`POST /inject HTTP/1.1\r\nhost: ${SERVICE_NAME}\r\n`], {
    isEnded: false,
  });
  assert.equal(slowHeaders.status, 408);
  assert.match(
    slowHeaders.message,
    new RegExp(`the request headers did not arrive within ${CLIENT_TIMEOUT_MS} ms`),
  );
  const body = review(pod());
  const slowBody = await errorAnswer([post(body).slice(0, -100)], { isEnded: false });
  assert.equal(slowBody.status, 408);
  assert.match(
    slowBody.message,
    new RegExp(`the request body did not arrive within ${CLIENT_TIMEOUT_MS} ms`),
  );
  await assertServing();
});

test('a pod name with a newline and a terminal escape (the webhook sees names before the API server validates them) cannot forge log lines: it is logged and answered escaped, a huge one clipped', async () => {
  const forged = 'web\ninject: pod kube-system/etcd injected (injected)\u001b[31m';
  const uid = crypto.randomUUID();
  const before = logLines.length;
  const response = await reviewAnswer(
    [post(review(pod({ metadata: { name: forged, annotations: {} } }), {}, uid))],
    uid,
  );
  assert.equal(response.allowed, true);
  const huge = crypto.randomUUID();
  await reviewAnswer([post(review(pod({ metadata: { name: 'x'.repeat(100_000) } }), {}, huge))], huge);
  const lines = logLines.slice(before);
  assert.equal(lines.length, 2);
  assert.equal(
    lines[0],
    'inject: pod demo/web\\u000ainject: pod kube-system/etcd injected (injected)\\u001b[31m skipped (not-enabled)\n',
  );
  assert.match(lines[1] ?? '', /^inject: pod demo\/x{256}… injected \(injected\)\n$/);
  const refused = crypto.randomUUID();
  const status = await reviewAnswer([post(review(null, { name: forged }, refused))], refused);
  assert.match(status.status?.message ?? '', /refused pod demo\/web\\u000ainject: pod kube-system/);
});

test('the admissions refused before a decision are counted as errors by code, those Node refused before the handler too', async () => {
  const text = await metrics(webhook.adminUrl);
  const errors = (reason: string) =>
    metricValue(text, 'mutual_injector_admissions_total', { result: 'error', reason });
  assert.ok(errors('MUTUAL_K8S_ADMISSION_REVIEW_TOO_LARGE') >= 1);
  // 8 envelopes, 7 HTTP refusals and 2 slow clients above.
  assert.ok(errors('MUTUAL_K8S_ADMISSION_REVIEW_INVALID') >= 17, text);
  assert.ok(
    metricValue(text, 'mutual_injector_admissions_total', { result: 'refused', reason: 'object-invalid' }) >=
      4,
  );
});

test('a flood of refused requests is logged once, not once per request: the rest are summed up later, and all are counted', async () => {
  const refusalLines = () => logLines.filter((line) => /refused( before it was read)? \[/.test(line)).length;
  const errors = async () =>
    metricValue(await metrics(webhook.adminUrl), 'mutual_injector_admissions_total', {
      result: 'error',
      reason: 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID',
    });
  const [linesBefore, countedBefore] = [refusalLines(), await errors()];
  for (let i = 0; i < 25; i++) {
    const answer = await errorAnswer(['\x16\x03\x01 this is not HTTP\r\n\r\n']);
    assert.equal(answer.status, 400);
  }
  assert.ok(refusalLines() - linesBefore <= 1, logLines.slice(-30).join(''));
  assert.equal((await errors()) - countedBefore, 25);
  await assertServing();
});
