// docs/kubernetes.md pipes what the cluster holds through `mutual inject` into `kubectl apply`
// (`kubectl get deploy -o json | mutual inject … - | kubectl apply -f -`). Done with pods or Jobs
// (`kubectl get pods -o yaml`, an easy slip when a namespace is being moved), the injected output
// was printed as "injected" without a word, and kubectl apply then fails on every one: a Pod's
// containers and a Job's pod template cannot change once they exist. The report now says so for
// each object read from the cluster (it has a uid), and what to inject instead. The output is
// unchanged, and manifests from files (no uid) get no note.
import assert from 'node:assert/strict';
import test from 'node:test';
import { injectText } from './inject-harness.ts';

const LIVE = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-5d8f7b9c4-x2k7p
    namespace: shop
    uid: 1b4f0c2e-3d8a-4d1e-9c1a-8b7e6f5d4c3b
    labels: {app: web, pod-template-hash: 5d8f7b9c4}
    ownerReferences:
    - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f7b9c4, uid: 9a8b7c6d-0000-1111-2222-333344445555, controller: true}
  spec:
    containers: [{name: web, image: nginx}]
- apiVersion: v1
  kind: Pod
  metadata: {name: debug, namespace: shop, uid: 2b4f0c2e-3d8a-4d1e-9c1a-8b7e6f5d4c3b}
  spec:
    containers: [{name: debug, image: busybox}]
- apiVersion: batch/v1
  kind: Job
  metadata: {name: migrate, namespace: shop, uid: 3b4f0c2e-3d8a-4d1e-9c1a-8b7e6f5d4c3b}
  spec:
    template:
      spec:
        restartPolicy: Never
        containers: [{name: migrate, image: shop/migrate}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop, uid: 4b4f0c2e-3d8a-4d1e-9c1a-8b7e6f5d4c3b}
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec:
        containers: [{name: web, image: nginx}]
`;

test('pods and Jobs read from the cluster are injected with a note that kubectl apply refuses them, and what to inject instead', async () => {
  const run = await injectText('live.yaml', LIVE);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.stderr.trimEnd().split('\n'), [
    'pod/web-5d8f7b9c4-x2k7p (live.yaml:4): injected',
    "pod/web-5d8f7b9c4-x2k7p (live.yaml:4): note: this Pod was read from the cluster (it has a uid), and a Pod's containers cannot change once it exists, so kubectl apply will refuse it: inject its Deployment web instead, whose pods then get the proxy as they are re-created",
    'pod/debug (live.yaml:15): injected',
    "pod/debug (live.yaml:15): note: this Pod was read from the cluster (it has a uid), and a Pod's containers cannot change once it exists, so kubectl apply will refuse it: delete the pod and create this one instead (kubectl replace --force -f -)",
    'job/migrate (live.yaml:25): injected',
    "job/migrate (live.yaml:25): note: this Job was read from the cluster (it has a uid), and a Job's pod template cannot change once it exists, so kubectl apply will refuse it: inject the Job's own manifest (or its CronJob) and create it anew",
    // A Deployment's template can change: applied, it rolls out injected pods.
    'deployment/web (live.yaml:34): injected',
  ]);
  assert.equal(
    run.stdout.match(
      /image: ghcr.io\/mutual-mesh\/mutual:[^\n]*\n *imagePullPolicy: IfNotPresent\n *restartPolicy: Always/g,
    )?.length,
    4,
  );
});

test('the same objects from manifest files (no uid) get no note', async () => {
  const run = await injectText(
    'files.yaml',
    LIVE.replace(/,? ?uid: [0-9a-f-]{36}/g, '').replace(/\n {4}uid: [0-9a-f-]{36}/g, ''),
  );
  assert.equal(run.code, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /note:/);
  assert.equal(run.stderr.match(/: injected/g)?.length, 4);
});
