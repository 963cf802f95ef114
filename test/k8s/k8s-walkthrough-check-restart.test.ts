// `mutual check` lists the pods of an injection namespace that run without the proxy, each with the
// command that re-creates it. A pod of a Job (or of a ReplicaSet that no Deployment owns, as an
// Argo Rollout's are, or a ReplicationController) was told "delete pod X, then create it again (it
// has no controller that would)": wrong, its controller replaces a deleted pod, and a user following
// it would create a second one by hand. Now the fix names the controller that creates another.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock } from '../../src/clock.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { NOW, plainPod, renderCluster } from './check-cluster-fixture.ts';
import { type FakeCluster, type FakeObject, startFakeCluster } from './fake-cluster.ts';

let cluster: FakeCluster;
let cwd: string;

before(async () => {
  cluster = await startFakeCluster();
  cwd = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-check-'));
});

after(async () => {
  await cluster?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

function ownedPod(name: string, owner: { kind: string; name: string }): FakeObject {
  const pod = plainPod('shop', name);
  return {
    ...pod,
    metadata: {
      ...pod.metadata,
      ownerReferences: [{ apiVersion: 'v1', ...owner, controller: true, uid: `uid-${name}` }],
    },
  };
}

test('the fix for an uninjected pod of a Job, a bare ReplicaSet or a ReplicationController deletes it and lets its controller replace it', async () => {
  const rendered = await renderCluster();
  cluster.clear();
  cluster.put(
    ...rendered.objects,
    ownedPod('nightly-report-29123-abcde', { kind: 'Job', name: 'nightly-report-29123' }),
    ownedPod('canary-7f9c-xk2p1', { kind: 'ReplicaSet', name: 'canary-7f9c' }),
    ownedPod('legacy-h4k9q', { kind: 'ReplicationController', name: 'legacy' }),
    plainPod('shop', 'debug'),
  );
  cluster.setDate(NOW);
  const run = await runMutualInProcess(['check', '--kubeconfig', await cluster.kubeconfig(), '-o', 'json'], {
    cwd,
    clock: fixedClock(NOW),
  });
  const json = JSON.parse(run.stdout) as {
    checks: { description: string; results: { subject?: string; details?: string[] }[] }[];
  };
  const entry = json.checks.find((e) => e.description === 'pods opted into injection run the proxy');
  const fixes = Object.fromEntries((entry?.results ?? []).map((result) => [result.subject, result.details]));
  assert.deepEqual(fixes, {
    'shop/canary-7f9c-xk2p1': [
      'fix: kubectl -n shop delete pod canary-7f9c-xk2p1 (its ReplicaSet canary-7f9c creates another)',
    ],
    'shop/debug': [
      'fix: kubectl -n shop delete pod debug, then create it again (it has no controller that would)',
    ],
    'shop/legacy-h4k9q': [
      'fix: kubectl -n shop delete pod legacy-h4k9q (its ReplicationController legacy creates another)',
    ],
    'shop/nightly-report-29123-abcde': [
      'fix: kubectl -n shop delete pod nightly-report-29123-abcde (its Job nightly-report-29123 creates another; the deleted pod counts as a failure against its backoffLimit)',
    ],
  });
});
