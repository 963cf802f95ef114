// docs/kubernetes.md: with the default failurePolicy Ignore, pods created while the injector is
// unreachable start without the proxy, unmeshed. A workload opted in by its own annotation
// (`mutual.dev/inject: enabled`, in a namespace not labelled for injection: the way one workload is
// moved at a time) whose pods came up so was never reported by `mutual check`, which looked only in
// labelled namespaces: all green while the pods ran outside the mesh. They are now listed with
// their restart command like those of labelled namespaces; mutual-system and kube-system, which
// the webhook is never called for, are not.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock } from '../../src/clock.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { NOW, plainPod, renderCluster } from './check-cluster-fixture.ts';
import { type FakeCluster, type FakeObject, startFakeCluster } from './fake-cluster.ts';

const DESCRIPTION = 'pods opted into injection run the proxy';

let cluster: FakeCluster;
let cwd: string;

before(async () => {
  cluster = await startFakeCluster();
  cwd = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-opted-in-'));
});

after(async () => {
  await cluster?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

/** A pod of Deployment `name` in `ns` as its ReplicaSet creates it, with `metadata` added. */
function deploymentPod(
  ns: string,
  name: string,
  metadata: { annotations?: object; labels?: object },
): FakeObject {
  const pod = plainPod(ns, `${name}-7c9d8e6f5-q2w3e`);
  return {
    ...pod,
    metadata: {
      ...pod.metadata,
      labels: { app: name, 'pod-template-hash': '7c9d8e6f5', ...metadata.labels },
      ...(metadata.annotations ? { annotations: metadata.annotations } : {}),
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-7c9d8e6f5`, controller: true, uid: name },
      ],
    },
  };
}

test('a pod opted in by annotation or label outside the labelled namespaces, running without the proxy, fails the check', async () => {
  const rendered = await renderCluster();
  cluster.clear();
  cluster.put(
    ...rendered.objects,
    // billing is not labelled; its payments pods are injected (the fixture), this one was not.
    deploymentPod('billing', 'ledger', { annotations: { 'mutual.dev/inject': 'enabled' } }),
    deploymentPod('default', 'api', { labels: { 'mutual.dev/inject': 'enabled' } }),
    // Not opted in, opted out, or where the webhook never looks: not reported.
    deploymentPod('default', 'plain', {}),
    deploymentPod('billing', 'batch', {
      annotations: { 'mutual.dev/inject': 'disabled' },
      labels: { 'mutual.dev/inject': 'enabled' },
    }),
    deploymentPod('kube-system', 'dns', { annotations: { 'mutual.dev/inject': 'enabled' } }),
  );
  cluster.setDate(NOW);
  const run = await runMutualInProcess(['check', '--kubeconfig', await cluster.kubeconfig(), '-o', 'json'], {
    cwd,
    clock: fixedClock(NOW),
  });
  assert.equal(run.code, 1);
  const json = JSON.parse(run.stdout) as {
    checks: {
      description: string;
      status: string;
      results: { subject?: string; message: string; details?: string[] }[];
    }[];
  };
  const entry = json.checks.find((e) => e.description === DESCRIPTION);
  assert.equal(entry?.status, 'fail');
  assert.deepEqual(
    entry?.results.map((result) => [result.subject, result.message, result.details]),
    [
      [
        'billing/ledger-7c9d8e6f5-q2w3e',
        'no mutual-proxy container',
        ['fix: kubectl -n billing rollout restart deploy/ledger'],
      ],
      [
        'default/api-7c9d8e6f5-q2w3e',
        'no mutual-proxy container',
        ['fix: kubectl -n default rollout restart deploy/api'],
      ],
    ],
  );
});

test('without labelled namespaces, opted-in pods are still checked; with none of either the check is skipped', async () => {
  const rendered = await renderCluster();
  const unlabelled = rendered.objects.map((object) =>
    object.kind === 'Namespace' && object.metadata.name === 'shop'
      ? { ...object, metadata: { ...object.metadata, labels: { 'kubernetes.io/metadata.name': 'shop' } } }
      : object,
  );
  cluster.clear();
  cluster.put(...unlabelled);
  const check = async () => {
    const run = await runMutualInProcess(
      ['check', '--kubeconfig', await cluster.kubeconfig(), '-o', 'json'],
      {
        cwd,
        clock: fixedClock(NOW),
      },
    );
    const json = JSON.parse(run.stdout) as {
      checks: { description: string; status: string; results: { message: string }[] }[];
    };
    return json.checks.find((e) => e.description === DESCRIPTION);
  };
  cluster.setDate(NOW);
  // The fixture's shop pods are injected from their template (annotated mutual.dev/inject: enabled
  // by mutual inject), and billing/payments opted in: all run the proxy.
  let entry = await check();
  assert.equal(entry?.status, 'ok');
  assert.equal(entry?.results[0]?.message, '3 pods');
  cluster.clear();
  cluster.put(...unlabelled.filter((object) => object.kind !== 'Pod'), plainPod('default', 'debug'));
  entry = await check();
  assert.equal(entry?.status, 'skip');
  assert.equal(
    entry?.results[0]?.message,
    'no namespace is labelled for injection and no pod is annotated for it',
  );
});

// With failurePolicy Fail the check said "no pod is created in the namespaces it selects", as if
// only labelled namespaces stopped; the pods webhook (per-pod opt-in) is called in every namespace
// but mutual-system and kube-system, so all of them do (docs/kubernetes.md, the failure policy).
test('the failure policy Fail is explained as stopping pod creation in every namespace but the two', async () => {
  const rendered = await renderCluster({ flags: { webhookFailurePolicy: 'Fail' } });
  cluster.clear();
  cluster.put(...rendered.objects);
  cluster.setDate(NOW);
  const run = await runMutualInProcess(['check', '--kubeconfig', await cluster.kubeconfig()], {
    cwd,
    clock: fixedClock(NOW),
  });
  assert.match(
    run.stdout,
    /√ webhook failure policy: Fail \(while the injector is down, no pod is created in any namespace but mutual-system and kube-system\)\n/,
  );
});
