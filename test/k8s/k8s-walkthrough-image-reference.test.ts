// The proxy image a user names (for a private registry: `mutual inject --image`, the webhook's
// `--image`, or per pod `config.mutual.dev/proxy-image`) was checked only for spaces, unlike
// `mutual install --image`: `Registry.example.com/Mutual:dev` was written into mutual-init and
// mutual-proxy, the kubelet cannot read it (InvalidImageName), and every injected pod stayed in
// Init. Now each is checked as an image reference, as install checks it: the flag is a usage error,
// the annotation an annotation error (offline exit 1, the webhook refuses the pod saying why).
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

const podWithImage = (image: string) => `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    config.mutual.dev/proxy-image: "${image}"
spec:
  containers: [{name: web, image: nginx}]
`;

test('config.mutual.dev/proxy-image must be an image reference the runtime can pull', async () => {
  const bad = await injectText('pod.yaml', podWithImage('Registry.example.com/Mutual:dev'));
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '');
  assert.match(
    bad.stderr,
    /MUTUAL_K8S_INJECT_ANNOTATION_INVALID.*\n {2}pod\.yaml:6:36: pod\/web: config\.mutual\.dev\/proxy-image: "Registry\.example\.com\/Mutual:dev" is not an image reference: write it as \[registry\/\]name\[:tag\]\[@sha256:digest\], the name in lower case/,
  );
  for (const good of [
    'registry.example.com:5000/mesh/mutual:0.1.0-rc.1',
    `ghcr.io/mutual-mesh/mutual@sha256:${'a'.repeat(64)}`,
    'mutual',
  ]) {
    const run = await injectText('pod.yaml', podWithImage(good));
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.split(`image: ${good}\n`).length - 1, 2, `${good} in both containers`);
  }
});

test('mutual inject --image must be an image reference', async () => {
  const run = await injectText('pod.yaml', podWithImage('mutual'), ['--image', 'Reg/Mutual:1']);
  assert.equal(run.code, 2);
  assert.match(
    run.stderr,
    /--image "Reg\/Mutual:1" is not an image reference; write it as \[registry\/\]name/,
  );
});

let dir: string;
let pki: TestPki;
let files: WebhookFiles;
let serve: InjectServeProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-image-'));
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

test('the webhook refuses a pod whose proxy image is no image reference, saying which', async () => {
  const object = pod({
    metadata: {
      annotations: { 'mutual.dev/inject': 'enabled', 'config.mutual.dev/proxy-image': 'Registry/Mutual:dev' },
    },
  });
  const answer = await callWebhook(admissionReview(object));
  assert.equal(answer.status, 200, answer.body);
  const { response } = JSON.parse(answer.body) as {
    response: { allowed: boolean; status?: { code: number; message: string } };
  };
  assert.equal(response.allowed, false);
  assert.equal(response.status?.code, 400);
  assert.match(
    response.status?.message ?? '',
    /config\.mutual\.dev\/proxy-image: "Registry\/Mutual:dev" is not an image reference/,
  );
});
