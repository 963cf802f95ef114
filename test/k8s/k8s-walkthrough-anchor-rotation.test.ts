// docs/kubernetes.md section 4 rotates the trust anchor by restarting every meshed workload after
// step 1, so that each pod carries the new root in MUTUAL_PROXY_IDENTITY_BUNDLE_PEM. A workload
// injected with `mutual inject` (section 2, "Without the webhook") has the proxy in its template:
// its restarted pods came to the webhook already injected and were left alone ("already
// injected"), so they kept the old anchors however often they were restarted, and re-running
// `mutual inject --trust-anchors-file <new>` on it changed nothing either. After step 3 such a pod's
// proxy, once restarted, could no longer trust the identity service. Now both bring the anchors of
// an already injected pod up to date (that value only), and leave it alone when they are current.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fastJsonPatch from 'fast-json-patch';
import { parseDocument } from 'yaml';
import { createTestPki, type TestPki } from '../../src/testing/mesh-pki.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { INJECT_ANCHORS_FILE } from './inject-harness.ts';
import {
  admissionReview,
  type InjectServeProcess,
  SERVICE_NAME,
  startInjectServe,
  type WebhookFiles,
  writeWebhookFiles,
} from './webhook-harness.ts';

const { applyPatch } = fastJsonPatch;

const MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: shop/web:2.0
          readinessProbe:
            httpGet: {path: /ready, port: 8080}
`;

let dir: string;
let pki: TestPki;
let files: WebhookFiles;
let serve: InjectServeProcess;
/** The Deployment injected offline with the old anchors (the goldens' root). */
let injectedOld: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-rotation-'));
  pki = await createTestPki(join(dir, 'pki'));
  files = {
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    anchorsFile: join(dir, 'anchors.pem'),
  };
  // The mesh's anchors now: the old root and the new one (step 1 of the rotation).
  await writeWebhookFiles(pki, files);
  const both = `${await readFile(INJECT_ANCHORS_FILE, 'utf8')}${pki.anchor.certificatePem}`;
  await writeFile(files.anchorsFile, both);
  await writeFile(join(dir, 'web.yaml'), MANIFEST);
  const first = await inject('web.yaml', INJECT_ANCHORS_FILE);
  assert.equal(first.code, 0, first.stderr);
  injectedOld = first.stdout;
  await writeFile(join(dir, 'web-injected.yaml'), injectedOld);
  serve = await startInjectServe(files);
});

after(async () => {
  serve?.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

function inject(file: string, anchorsFile: string) {
  return runMutualInProcess(['inject', file, '--trust-anchors-file', anchorsFile], { cwd: dir });
}

type Container = { name: string; env?: { name: string; value?: string }[] };
type PodSpec = { initContainers: Container[]; containers: Container[] };

function bundleOf(spec: PodSpec): string | undefined {
  return spec.initContainers
    .find((container) => container.name === 'mutual-proxy')
    ?.env?.find((entry) => entry.name === 'MUTUAL_PROXY_IDENTITY_BUNDLE_PEM')?.value;
}

const templateSpec = (yaml: string) =>
  (parseDocument(yaml).toJS() as { spec: { template: { spec: PodSpec } } }).spec.template.spec;

test('mutual inject on an injected workload with new anchors updates them, and only them', async () => {
  const run = await inject('web-injected.yaml', files.anchorsFile);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(
    run.stderr,
    'deployment/web (web-injected.yaml:7): already injected; its trust anchors (MUTUAL_PROXY_IDENTITY_BUNDLE_PEM) updated to the given ones\n',
  );
  const both = await readFile(files.anchorsFile, 'utf8');
  assert.equal(bundleOf(templateSpec(run.stdout)), both);
  // Everything else as it was: the old output with the new anchors in that one place.
  const before = templateSpec(injectedOld);
  const after = templateSpec(run.stdout);
  const proxy = after.initContainers.find((container) => container.name === 'mutual-proxy')!;
  proxy.env!.find((entry) => entry.name === 'MUTUAL_PROXY_IDENTITY_BUNDLE_PEM')!.value = bundleOf(before);
  assert.deepEqual(after, before);
  // Current anchors: left alone, byte for byte.
  await writeFile(join(dir, 'web-current.yaml'), run.stdout);
  const again = await inject('web-current.yaml', files.anchorsFile);
  assert.equal(again.stderr, 'deployment/web (web-current.yaml:7): skipped: already injected\n');
  assert.equal(again.stdout, run.stdout);
  // The same roots in another order (a ConfigMap written by hand): the same anchors, left alone.
  const reversed = join(dir, 'reversed.pem');
  await writeFile(reversed, `${pki.anchor.certificatePem}${await readFile(INJECT_ANCHORS_FILE, 'utf8')}`);
  const reordered = await inject('web-current.yaml', reversed);
  assert.equal(reordered.stderr, 'deployment/web (web-current.yaml:7): skipped: already injected\n');
});

/** POST /inject/namespace as the API server does, verified with the caBundle by the Service's name. */
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
        path: '/inject/namespace?timeout=10s',
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

test("the webhook gives a restarted pod of such a workload the mesh's current anchors", async () => {
  const template = (parseDocument(injectedOld).toJS() as { spec: { template: object } }).spec.template as {
    metadata: object;
    spec: PodSpec;
  };
  // The pod its ReplicaSet creates after `kubectl rollout restart`.
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...template.metadata, generateName: 'web-5d8f7b9c4-', namespace: 'shop' },
    spec: template.spec,
  };
  const answer = await callWebhook(admissionReview(pod, { namespace: 'shop' }));
  assert.equal(answer.status, 200, answer.body);
  const { response } = JSON.parse(answer.body) as { response: { allowed: boolean; patch?: string } };
  assert.equal(response.allowed, true);
  assert.ok(response.patch, 'a patch for the anchors');
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
  assert.deepEqual(
    patch.map((operation: { op: string; path: string }) => `${operation.op} ${operation.path}`),
    ['replace /spec/initContainers/1/env/2/value'],
  );
  const patched = applyPatch(structuredClone(pod), patch, true, false).newDocument as { spec: PodSpec };
  assert.equal(bundleOf(patched.spec), await readFile(files.anchorsFile, 'utf8'));
  // A pod that has them already: allowed unchanged.
  const current = JSON.parse((await callWebhook(admissionReview(patched, { namespace: 'shop' }))).body) as {
    response: { allowed: boolean; patch?: string };
  };
  assert.equal(current.response.allowed, true);
  assert.equal(current.response.patch, undefined);
});
