// `mutual inject` on pods without containers, which the API server refuses (at least one is
// required): an empty list, none at all, or the list under a misspelled key are each an error at
// file:line naming the workload and the fix, nothing printed; not a skip that exits 0 and leaves
// the user to find out from kubectl apply.
import assert from 'node:assert/strict';
import test from 'node:test';
import { injectText } from './inject-harness.ts';

test('pods without containers (empty, missing, under `container:`): MUTUAL_K8S_INJECT_YAML_INVALID at file:line with the fix, nothing printed', async () => {
  const text = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: empty}',
    'spec:',
    '  selector: {matchLabels: {app: x}}',
    '  template:',
    '    metadata: {labels: {app: x}}',
    '    spec:',
    '      containers: []',
    '---',
    'apiVersion: v1',
    'kind: Pod',
    'metadata: {name: typo}',
    'spec:',
    '  container:',
    '  - name: web',
    '    image: nginx',
    '---',
    'apiVersion: batch/v1',
    'kind: Job',
    'metadata: {name: none}',
    'spec:',
    '  template:',
    '    spec:',
    '      restartPolicy: Never',
    '',
  ].join('\n');
  const run = await injectText('empty.yaml', text);
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, '');
  assert.deepEqual(run.stderr.split('\n').slice(0, 4), [
    'error[MUTUAL_K8S_INJECT_YAML_INVALID]: empty.yaml has pod fields missing or of the wrong Kubernetes type (kubectl would refuse them too):',
    "  empty.yaml:9:7: deployment/empty: spec.containers is an empty list; a pod needs at least one container (kubectl would refuse it): list the app's containers there",
    '  empty.yaml:15:3: pod/typo: spec.container is not a pod field, and spec.containers is missing (kubectl would refuse the pod): rename it to containers',
    "  empty.yaml:25:7: job/none: spec.containers is missing; a pod needs at least one container (kubectl would refuse it): list the app's containers there",
  ]);
});
