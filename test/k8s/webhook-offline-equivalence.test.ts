// `mutual inject` offline and the injector webhook on the same manifests: real-world-shaped
// excerpts (golden/inject-real-world.in.yaml) and real samples kept verbatim (golden/real/: Istio's
// bookinfo, Linkerd's emojivoto as Jobs, the Cassandra StatefulSet of kubernetes/examples, Google's
// microservices-demo): for every pod template, the pod the API server would send
// (the template as JSON, as kubectl sends it) goes to the real `mutual inject serve` over HTTPS, its
// JSON Patch is applied with fast-json-patch, and the result must be the template `mutual inject`
// printed, read as kubectl reads YAML; what one leaves alone, the other leaves alone too.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fastJsonPatch from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1/Pod';
import { parseAllDocuments } from 'yaml';
import { findPodTemplates } from '../../src/k8s/index.ts';
import { createTestPki, type TestPki } from '../../src/testing/mesh-pki.ts';
import { repoRoot, runMutual } from '../e2e/run-mutual.ts';
import {
  admissionReview,
  type InjectServeProcess,
  SERVICE_NAME,
  startInjectServe,
  type WebhookFiles,
  writeWebhookFiles,
} from './webhook-harness.ts';

const { applyPatch, deepClone } = fastJsonPatch;
const FIXTURE = join(repoRoot(), 'test', 'k8s', 'golden', 'inject-real-world.in.yaml');
const REAL_DIR = join(repoRoot(), 'test', 'k8s', 'golden', 'real');
/** kubectl's YAML: 1.1 (0755 is octal), without timestamps. */
const KUBECTL_YAML = {
  version: '1.1',
  merge: true,
  customTags: (tags: unknown[]) =>
    tags.filter(
      (tag) =>
        (tag as { format?: string }).format !== 'TIME' &&
        !String((tag as { tag?: string }).tag).endsWith(':timestamp'),
    ),
} as never;

let dir: string;
let pki: TestPki;
let files: WebhookFiles;
let serve: InjectServeProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-offline-'));
  pki = await createTestPki(join(dir, 'pki'));
  files = {
    certFile: join(dir, 'tls', 'tls.crt'),
    keyFile: join(dir, 'tls', 'tls.key'),
    anchorsFile: join(dir, 'anchors.pem'),
  };
  await mkdir(join(dir, 'tls'));
  await writeWebhookFiles(pki, files);
  serve = await startInjectServe(files);
});

after(async () => {
  serve?.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

interface AdmissionAnswer {
  allowed: boolean;
  patch?: string;
  warnings?: string[];
}

/** POST /inject/namespace (a namespace opted in by label) as the API server does. */
function admit(object: unknown): Promise<AdmissionAnswer> {
  const body = admissionReview(object);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: serve.port,
        method: 'POST',
        path: '/inject/namespace',
        servername: SERVICE_NAME,
        ca: pki.anchor.certificatePem,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on('end', () => {
          try {
            assert.equal(res.statusCode, 200, text);
            resolve((JSON.parse(text) as { response: AdmissionAnswer }).response);
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const valueAt = (object: unknown, path: readonly (string | number)[]): unknown =>
  path.reduce<unknown>((current, key) => (current as Record<string | number, unknown>)?.[key], object);

/**
 * `mutual inject` on `fixture`, then every pod template through the webhook: the patched pod must be
 * the printed template, each valid. Returns the printed objects and each template's outcome.
 */
async function injectBothWays(fixture: string) {
  const run = await runMutual(['inject', '--trust-anchors-file', files.anchorsFile, '-f', fixture]);
  assert.equal(run.code, 0, run.stderr);
  const read = (text: string) =>
    parseAllDocuments(text, KUBECTL_YAML).map((doc) => doc.toJS({ maxAliasCount: -1 }) as unknown);
  const given = read(await readFile(fixture, 'utf8'));
  const printed = read(run.stdout);
  assert.equal(printed.length, given.length);
  const outcomes: string[] = [];
  for (const [index, object] of given.entries()) {
    for (const location of findPodTemplates(object)) {
      const template = valueAt(object, location.path) as { metadata?: object; spec: object };
      // What a controller creates from the template, as JSON (kubectl sends JSON too).
      const pod = JSON.parse(
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: template.metadata ?? {},
          spec: template.spec,
        }),
      );
      const offline = valueAt(printed[index], location.path) as { metadata?: object; spec: object };
      const answer = await admit(pod);
      assert.equal(answer.allowed, true);
      if (answer.patch === undefined) {
        assert.deepEqual(
          offline,
          template,
          `${location.name}: the webhook left it alone, mutual inject did not`,
        );
        outcomes.push(`${location.name} skipped`);
        continue;
      }
      const patch = JSON.parse(Buffer.from(answer.patch, 'base64').toString('utf8'));
      const patched = applyPatch(deepClone(pod), patch, true, false).newDocument;
      assert.deepEqual(
        { metadata: patched.metadata, spec: patched.spec },
        { metadata: offline.metadata ?? {}, spec: offline.spec },
        `${location.name}: the webhook's pod differs from mutual inject's`,
      );
      new Pod(patched as never).validate();
      outcomes.push(`${location.name} injected`);
    }
  }
  return { run, given, printed, outcomes };
}

test('every pod template of real-world manifests: the webhook patch gives what mutual inject prints, and both leave the same pods alone', async () => {
  const { run, printed, outcomes } = await injectBothWays(FIXTURE);
  assert.deepEqual(outcomes, [
    'deployment/web injected',
    'deployment/reviews-v3 injected',
    'deployment/contour injected',
    'deployment/hello injected',
    'statefulset/redis-master injected',
    'cronjob/report injected',
    'daemonset/node-exporter skipped',
    'pod/legacy skipped',
    'pod/istio-injected skipped',
    'pod/linkerd-asked skipped',
  ]);
  // The modes stay what kubectl reads (0755 = 493), and the loosely written probe is as the kubelet sends it.
  const redis = printed[4] as {
    spec: { template: { spec: { volumes: { configMap?: { defaultMode: number } }[] } } };
  };
  assert.equal(redis.spec.template.spec.volumes[0]?.configMap?.defaultMode, 0o755);
  assert.match(
    run.stdout,
    /"\/app-health\/hello\/startupz":\{"httpGet":\{"path":"\/healthz","port":3333\},"timeoutSeconds":1\}/,
  );
});

test('real samples kept verbatim (bookinfo, emojivoto Jobs, Cassandra StatefulSet, microservices-demo): every pod template injected alike both ways; the other objects printed as given', async () => {
  const samples: Record<string, string[]> = {
    'bookinfo.yaml': [
      'details-v1',
      'ratings-v1',
      'reviews-v1',
      'reviews-v2',
      'reviews-v3',
      'productpage-v1',
    ].map((name) => `deployment/${name} injected`),
    'emojivoto-job.yml': ['emoji', 'voting', 'web', 'vote-bot'].map((name) => `job/${name} injected`),
    'cassandra-statefulset.yaml': ['statefulset/cassandra injected'],
    'microservices-demo-excerpt.yaml': ['emailservice', 'frontend', 'loadgenerator', 'redis-cart'].map(
      (name) => `deployment/${name} injected`,
    ),
  };
  for (const [file, expected] of Object.entries(samples)) {
    const { given, printed, outcomes } = await injectBothWays(join(REAL_DIR, file));
    assert.deepEqual(outcomes, expected, file);
    // Services, ServiceAccounts, the Namespace, the StorageClass: what they were.
    for (const [index, object] of given.entries()) {
      if (findPodTemplates(object).length === 0)
        assert.deepEqual(printed[index], object, `${file}[${index}]`);
    }
  }
});
