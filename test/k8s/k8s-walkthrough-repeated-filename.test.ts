// kubectl takes -f more than once (`kubectl apply -f namespace.yaml -f k8s/`), and
// docs/kubernetes.md says `mutual inject` takes -f "as kubectl apply and istioctl kube-inject take
// them". Given twice, it read only the last one and printed it, exit 0: the first file's workloads
// were silently missing from what the user piped into kubectl apply. Each -f is now read in turn
// (files and directories alike) and printed as one stream, the report naming each file.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { INJECT_ANCHORS_FILE } from './inject-harness.ts';

const inject = (args: readonly string[]) =>
  runMutualInProcess(['inject', '--trust-anchors-file', INJECT_ANCHORS_FILE, ...args], { cwd: dir });

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-repeated-f-'));
  await mkdir(join(dir, 'k8s'));
  await writeFile(
    join(dir, 'namespace.yaml'),
    'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {mutual.dev/inject: enabled}\n',
  );
  const deployment = (name: string) =>
    `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  selector: {matchLabels: {app: ${name}}}\n  template:\n    metadata: {labels: {app: ${name}}}\n    spec:\n      containers: [{name: ${name}, image: ${name}:1}]\n`;
  await writeFile(join(dir, 'k8s', 'a-web.yaml'), deployment('web'));
  await writeFile(join(dir, 'k8s', 'b-api.yaml'), deployment('api'));
  await writeFile(join(dir, 'worker.yaml'), deployment('worker'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('-f given three times (a file, a directory, a file): all of them, in order, as one stream', async () => {
  const run = await inject(['-f', 'namespace.yaml', '-f', 'k8s', '-f', 'worker.yaml']);
  assert.equal(run.code, 0, run.stderr);
  const objects = parseAllDocuments(run.stdout).map(
    (doc) => doc.toJS() as { kind: string; metadata: { name: string } },
  );
  assert.deepEqual(
    objects.map((object) => `${object.kind}/${object.metadata.name}`),
    ['Namespace/shop', 'Deployment/web', 'Deployment/api', 'Deployment/worker'],
  );
  assert.equal(run.stdout.match(/restartPolicy: Always/g)?.length, 3);
  assert.deepEqual(run.stderr.trimEnd().split('\n'), [
    `deployment/web (${join('k8s', 'a-web.yaml')}:7): injected`,
    `deployment/api (${join('k8s', 'b-api.yaml')}:7): injected`,
    'deployment/worker (worker.yaml:7): injected',
  ]);
});

test('stdin once at most; a FILE beside -f is refused, saying to use -f for each', async () => {
  const twice = await inject(['-f', '-', '-f', '-']);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /stdin \(-f -\) can be read once/);
  const both = await inject(['worker.yaml', '-f', 'namespace.yaml', '-f', 'k8s']);
  assert.equal(both.code, 2);
  assert.match(
    both.stderr,
    /give the manifests once: "worker\.yaml" and -f "namespace\.yaml" -f "k8s" both name files: use -f for each/,
  );
});
