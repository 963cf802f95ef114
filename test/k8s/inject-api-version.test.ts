// `mutual inject` on workloads kubectl would refuse for their apiVersion or kind (old manifests
// copied from blog posts and pre-1.16 charts: `extensions/v1beta1` Deployments, `batch/v1beta1`
// CronJobs; hand-written slips: a Deployment as `v1`, `kind: deployment`, no apiVersion): each is
// MUTUAL_K8S_INJECT_API_VERSION_INVALID at file:line:column naming the object and the apiVersion
// to write, nothing printed. Custom resources of other groups that reuse a kind name are not judged.
import assert from 'node:assert/strict';
import test from 'node:test';
import { injectText as inject } from './inject-harness.ts';

const template = (indent: string) =>
  ['template:', '  metadata: {labels: {app: web}}', '  spec:', '    containers: [{name: web, image: nginx}]']
    .map((line) => `${indent}${line}`)
    .join('\n');

test('a workload of an apiVersion no Kubernetes 1.29+ serves, without one, or with its kind in the wrong case: MUTUAL_K8S_INJECT_API_VERSION_INVALID at file:line:column with the fix, nothing printed', async () => {
  const text = [
    '# From a pre-1.16 tutorial',
    'apiVersion: extensions/v1beta1',
    'kind: Deployment',
    'metadata: {name: old}',
    'spec:',
    template('  '),
    '---',
    'apiVersion: v1',
    'kind: Deployment',
    'metadata: {name: core}',
    'spec:',
    '  selector: {matchLabels: {app: web}}',
    template('  '),
    '---',
    'apiVersion: batch/v1beta1',
    'kind: CronJob',
    'metadata: {name: nightly}',
    'spec:',
    '  schedule: "@daily"',
    '  jobTemplate:',
    '    spec:',
    template('      '),
    '---',
    'apiVersion: apps/v1',
    'kind: deployment',
    'metadata: {name: lower}',
    'spec:',
    '  selector: {matchLabels: {app: web}}',
    template('  '),
    '---',
    'apiVersion: v1',
    'kind: List',
    'items:',
    '- kind: Pod',
    '  metadata: {name: bare}',
    '  spec: {containers: [{name: web, image: nginx}]}',
    '---',
    'metadata: {name: kindless}',
    'spec: {containers: [{name: web, image: nginx}]}',
    '',
  ].join('\n');
  const run = await inject('old.yaml', text);
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, '');
  const lines = run.stderr.split('\n');
  assert.equal(
    lines[0],
    'error[MUTUAL_K8S_INJECT_API_VERSION_INVALID]: old.yaml has workloads whose apiVersion or kind Kubernetes does not serve (kubectl would refuse them):',
  );
  assert.deepEqual(lines.slice(1, 7), [
    '  old.yaml:2:13: deployment/old: apiVersion extensions/v1beta1 does not serve Deployment (removed in Kubernetes 1.16); the injected proxy is a native sidecar, which needs Kubernetes 1.29 or newer, where Deployment is apps/v1: write apiVersion: apps/v1, and add spec.selector.matchLabels (apps/v1 requires it; older versions took the template labels)',
    '  old.yaml:11:13: deployment/core: apiVersion v1 does not serve Deployment; the injected proxy is a native sidecar, which needs Kubernetes 1.29 or newer, where Deployment is apps/v1: write apiVersion: apps/v1',
    '  old.yaml:21:13: cronjob/nightly: apiVersion batch/v1beta1 does not serve CronJob (removed in Kubernetes 1.25); the injected proxy is a native sidecar, which needs Kubernetes 1.29 or newer, where CronJob is batch/v1: write apiVersion: batch/v1',
    '  old.yaml:34:7: deployment/lower: kind deployment: Kubernetes kinds are case-sensitive and kubectl finds no kind "deployment": write kind: Deployment',
    '  old.yaml:46:3: pod/bare: no apiVersion (kubectl refuses an object without one): add apiVersion: v1',
    '  old.yaml:50:1: object/kindless: no kind (kubectl refuses an object without one), though it holds a pod: add its kind (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob) and apiVersion',
  ]);
  assert.match(lines[7] ?? '', /^ {2}hint: Write the apiVersion and kind the message names/);
});

test('the apiVersions Kubernetes serves are injected; a custom resource that reuses a kind name (OpenKruise apps.kruise.io StatefulSet) is not judged', async () => {
  const text = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: web}',
    'spec:',
    '  selector: {matchLabels: {app: web}}',
    template('  '),
    '---',
    'apiVersion: batch/v1',
    'kind: CronJob',
    'metadata: {name: nightly}',
    'spec:',
    '  schedule: "@daily"',
    '  jobTemplate:',
    '    spec:',
    template('      '),
    '---',
    'apiVersion: apps.kruise.io/v1beta1',
    'kind: StatefulSet',
    'metadata: {name: kruise}',
    'spec:',
    '  selector: {matchLabels: {app: web}}',
    template('  '),
    '',
  ].join('\n');
  const run = await inject('ok.yaml', text);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /^deployment\/web \(ok\.yaml:7\): injected$/m);
  assert.match(run.stderr, /^cronjob\/nightly \(ok\.yaml:19\): injected$/m);
  assert.doesNotMatch(run.stderr, /error/);
});

test("a Helm chart's template file itself (not rendered): the YAML errors come after a line saying so and how to render it", async () => {
  const text = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: {{ include "app.fullname" . }}',
    '  labels:',
    '    {{- include "app.labels" . | nindent 4 }}',
    'spec:',
    '  template:',
    '    spec:',
    '      containers:',
    '        - name: {{ .Chart.Name }}',
    '',
  ].join('\n');
  const run = await inject('deployment.yaml', text);
  assert.equal(run.code, 1);
  assert.equal(run.stdout, '');
  const lines = run.stderr.split('\n');
  assert.equal(lines[0], 'error[MUTUAL_K8S_INJECT_YAML_INVALID]: deployment.yaml is not valid YAML:');
  assert.equal(
    lines[1],
    '  deployment.yaml:4:9: this is a Helm chart template ({{ … }} actions), not manifests: render it first, e.g. helm template RELEASE CHART | mutual inject -',
  );
  assert.match(lines[2] ?? '', /^ {2}deployment\.yaml:\d+:\d+: /);
});
