// A user moving from Linkerd or Istio keeps the pod annotations that tuned the old proxy:
// `config.linkerd.io/skip-outbound-ports: "3306"` (MySQL speaks first), Istio's
// `traffic.sidecar.istio.io/excludeInboundPorts`, `sidecar.istio.io/proxyMemoryLimit`... Mutual
// reads only its own `config.mutual.dev/*`, and both `mutual inject` and the webhook injected such
// pods without a word, so those ports silently went through Mutual's proxy. Now each setting with a
// Mutual equivalent is named, with the annotation to write: a note in `mutual inject`'s report at the
// annotation's line, an admission warning from the webhook. The output itself is unchanged.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createTestPki, type TestPki } from '../../src/testing/mesh-pki.ts';
import { injectText } from './inject-harness.ts';
import {
  admissionReview,
  type InjectServeProcess,
  pod,
  SERVICE_NAME,
  startInjectServe,
  type WebhookFiles,
  writeWebhookFiles,
} from './webhook-harness.ts';

const MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata:
      labels: {app: orders}
      annotations:
        config.linkerd.io/skip-outbound-ports: "3306"
        config.linkerd.io/proxy-memory-limit: 512Mi
        traffic.sidecar.istio.io/excludeInboundPorts: "9090"
        sidecar.istio.io/rewriteAppHTTPProbers: "false"
        config.mutual.dev/opaque-ports: "5432"
        config.linkerd.io/opaque-ports: "5432"
    spec:
      containers:
        - name: orders
          image: shop/orders:3
`;

test('mutual inject names each Linkerd or Istio setting Mutual ignores, at its line, with the annotation to write', async () => {
  const run = await injectText('orders.yaml', MANIFEST);
  assert.equal(run.code, 0, run.stderr);
  const notes = run.stderr.split('\n').filter((line) => line.includes(': note: '));
  assert.deepEqual(notes, [
    `deployment/orders (orders.yaml:10): note: annotation config.linkerd.io/skip-outbound-ports: "3306" is Linkerd's, which Mutual does not read: to keep its effect, annotate the pod template config.mutual.dev/skip-outbound-ports: "3306"`,
    `deployment/orders (orders.yaml:11): note: annotation config.linkerd.io/proxy-memory-limit: "512Mi" is Linkerd's, which Mutual does not read: to keep its effect, annotate the pod template config.mutual.dev/proxy-memory-limit: "512Mi"`,
    `deployment/orders (orders.yaml:12): note: annotation traffic.sidecar.istio.io/excludeInboundPorts: "9090" is Istio's, which Mutual does not read: to keep its effect, annotate the pod template config.mutual.dev/skip-inbound-ports: "9090"`,
    `deployment/orders (orders.yaml:13): note: annotation sidecar.istio.io/rewriteAppHTTPProbers: "false" is Istio's, which Mutual does not read: to keep its effect, annotate the pod template config.mutual.dev/rewrite-app-probes: "false"`,
  ]);
  // Already said the Mutual way (opaque-ports): nothing to say.
  assert.doesNotMatch(run.stderr, /linkerd\.io\/opaque-ports/);
  assert.match(run.stderr, /deployment\/orders \(orders\.yaml:7\): injected/);
  // The output is the injection as before: the foreign annotations stay, nothing is translated.
  assert.match(run.stdout, /config\.linkerd\.io\/skip-outbound-ports: "3306"/);
  assert.doesNotMatch(run.stdout, /config\.mutual\.dev\/skip-outbound-ports/);
});

test("Linkerd's settings on a Namespace, which Linkerd gives every pod there, are named too", async () => {
  const run = await injectText(
    'ns.yaml',
    `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {mutual.dev/inject: enabled}
  annotations:
    config.linkerd.io/skip-outbound-ports: "3306,11211"
    config.mutual.dev/skip-outbound-ports: "3306"
`,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.equal(
    run.stderr,
    `ns.yaml: no pods or workloads found; printed unchanged\nnamespace/shop (ns.yaml:7): note: annotation config.linkerd.io/skip-outbound-ports: "3306,11211" is Linkerd's, for every pod of the namespace; Mutual reads its settings on pods only: to keep its effect, annotate each pod template config.mutual.dev/skip-outbound-ports: "3306,11211"\n`,
  );
});

test('a pod with no other mesh settings gets no note', async () => {
  const run = await injectText(
    'plain.yaml',
    MANIFEST.replace(/ {8}config\.linkerd[^\n]*\n| {8}[a-z.]*istio[^\n]*\n/g, ''),
  );
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /note:/);
});

let dir: string;
let pki: TestPki;
let files: WebhookFiles;
let serve: InjectServeProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-mesh-annotations-'));
  pki = await createTestPki(join(dir, 'pki'));
  files = {
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    anchorsFile: join(dir, 'anchors.pem'),
  };
  await writeWebhookFiles(pki, files);
  serve = await startInjectServe(files);
});

after(async () => {
  serve?.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** POST /inject as the API server does: HTTPS verified with the caBundle, by the Service's name. */
function callWebhook(body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: serve.port,
        servername: SERVICE_NAME,
        ca: pki.anchor.certificatePem,
        checkServerIdentity: () => undefined,
        method: 'POST',
        path: '/inject?timeout=10s',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('the webhook injects such a pod and says the same in admission warnings', async () => {
  const annotated = pod({
    metadata: {
      annotations: {
        'mutual.dev/inject': 'enabled',
        'traffic.sidecar.istio.io/excludeOutboundPorts': '9042',
        'config.linkerd.io/skip-subnets': '169.254.169.254/32',
      },
    },
  });
  const answer = await callWebhook(admissionReview(annotated));
  assert.equal(answer.status, 200, answer.body);
  const { response } = JSON.parse(answer.body) as {
    response: { allowed: boolean; patch?: string; warnings?: string[] };
  };
  assert.equal(response.allowed, true);
  assert.ok(response.patch, 'injected');
  assert.deepEqual(response.warnings, [
    `mutual-injector: pod demo/web: annotation config.linkerd.io/skip-subnets: "169.254.169.254/32" is Linkerd's, which Mutual does not read: to keep its effect, annotate the pod template config.mutual.dev/skip-outbound-subnets: "169.254.169.254/32"`,
    `mutual-injector: pod demo/web: annotation traffic.sidecar.istio.io/excludeOutboundPorts: "9042" is Istio's, which Mutual does not read: to keep its effect, annotate the pod template config.mutual.dev/skip-outbound-ports: "9042"`,
  ]);
  // Without them: no warnings at all.
  const plain = JSON.parse((await callWebhook(admissionReview(pod()))).body) as {
    response: { warnings?: string[] };
  };
  assert.equal(plain.response.warnings, undefined);
});
