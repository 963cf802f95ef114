// docs/kubernetes.md: with `--webhook-failure-policy Fail`, an injector outage stops every pod
// creation in the cluster, so "run several replicas (--control-plane-replicas 3)". The replicas
// came with nothing to keep them apart: no PodDisruptionBudget, so a node drain (every cluster
// upgrade) could evict all of them at once, and no spreading, so all three could share the node
// being drained. With more than one replica, each control-plane Deployment now spreads its pods
// over nodes (ScheduleAnyway) and has a PodDisruptionBudget letting evictions take one at a time.
// One replica gets neither (a budget allowing no eviction would block drains).
import assert from 'node:assert/strict';
import test from 'node:test';
import { parseObjects, runInstall, validateObject } from './install-harness.ts';

test('--control-plane-replicas 3: every control-plane Deployment spreads over nodes and has a PodDisruptionBudget of maxUnavailable 1', async () => {
  const run = await runInstall(['--control-plane-replicas', '3', '--webhook-failure-policy', 'Fail']);
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  for (const object of objects) validateObject(object);
  const deployments = objects.filter((object) => object.kind === 'Deployment') as any[];
  const budgets = objects.filter((object) => object.kind === 'PodDisruptionBudget') as any[];
  assert.deepEqual(
    deployments.map((deployment) => deployment.metadata.name),
    ['mutual-identity', 'mutual-destination', 'mutual-injector'],
  );
  assert.deepEqual(
    budgets.map((budget) => budget.metadata.name),
    deployments.map((deployment) => deployment.metadata.name),
  );
  for (const deployment of deployments) {
    const budget = budgets.find((candidate) => candidate.metadata.name === deployment.metadata.name);
    assert.equal(budget.metadata.namespace, 'mutual-system');
    assert.equal(budget.spec.maxUnavailable, 1);
    // The budget selects exactly the Deployment's pods.
    assert.deepEqual(budget.spec.selector, deployment.spec.selector);
    assert.deepEqual(deployment.spec.template.spec.topologySpreadConstraints, [
      {
        maxSkew: 1,
        topologyKey: 'kubernetes.io/hostname',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: deployment.spec.selector,
      },
    ]);
    for (const [key, value] of Object.entries(deployment.spec.selector.matchLabels)) {
      assert.equal(deployment.spec.template.metadata.labels[key], value);
    }
  }
});

test('one replica (the default): no budget, no spreading', async () => {
  const run = await runInstall([]);
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  assert.equal(objects.filter((object) => object.kind === 'PodDisruptionBudget').length, 0);
  for (const deployment of objects.filter((object) => object.kind === 'Deployment') as any[]) {
    assert.equal(deployment.spec.template.spec.topologySpreadConstraints, undefined);
  }
});
