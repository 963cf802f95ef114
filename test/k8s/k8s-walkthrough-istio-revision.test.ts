// Istio's revision-based injection (canary upgrades, the default with `istioctl install
// --revision`): a pod template labelled `istio.io/rev: 1-22-1` is injected by that revision's webhook
// when the pod is created, in a namespace not labelled for Istio too. `mutual inject` and the
// webhook, which leave a pod alone for Istio's `sidecar.istio.io/inject: "true"`, injected this
// one, so such pods would start with two proxies fighting over their traffic. The label now counts
// as Istio's opt-in (an explicit `sidecar.istio.io/inject` still decides first, as in Istio).
import assert from 'node:assert/strict';
import test from 'node:test';
import { injectText } from './inject-harness.ts';

const deployment = (labels: string, annotations = '{}') => `apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: ${labels}
      annotations: ${annotations}
    spec:
      containers: [{name: reviews, image: reviews:1}]
`;

test('a pod template labelled istio.io/rev is left alone, saying why', async () => {
  const run = await injectText('reviews.yaml', deployment('{app: reviews, istio.io/rev: 1-22-1}'));
  assert.equal(run.code, 0, run.stderr);
  assert.equal(
    run.stderr,
    'deployment/reviews (reviews.yaml:7): skipped: label istio.io/rev: 1-22-1 asks another mesh to add its sidecar when the pod is created, and two proxies would fight over its traffic; remove it to mesh the pod with Mutual\n',
  );
  assert.doesNotMatch(run.stdout, /mutual-proxy/);
});

test("Istio's own opt-out beside the revision label decides, as in Istio", async () => {
  const run = await injectText(
    'reviews.yaml',
    deployment('{app: reviews, istio.io/rev: 1-22-1}', '{sidecar.istio.io/inject: "false"}'),
  );
  assert.match(run.stderr, /skipped: annotation sidecar\.istio\.io\/inject: "false" opts it out of sidecars/);
});

test('without the label the pod is injected as before', async () => {
  const run = await injectText('reviews.yaml', deployment('{app: reviews}'));
  assert.equal(run.stderr, 'deployment/reviews (reviews.yaml:7): injected\n');
});

// Istio users opt Jobs and CronJobs out (sidecar.istio.io/inject: "false") because Istio's sidecar
// kept them from completing. The opt-out is honoured, but the report now says why it may be
// obsolete with Mutual's native sidecar, so the Job is not left outside the mesh unknowingly.
test('a CronJob opted out of Istio is skipped with the reason the opt-out may be obsolete', async () => {
  const run = await injectText(
    'report.yaml',
    `apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {sidecar.istio.io/inject: "false"}
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: report:1}]
`,
  );
  assert.equal(
    run.stderr,
    `cronjob/report (report.yaml:9): skipped: annotation sidecar.istio.io/inject: "false" opts it out of sidecars; annotate it mutual.dev/inject: enabled to mesh it with Mutual anyway (Istio users set it on Jobs because Istio's sidecar kept them from completing; Mutual's is a native sidecar that stops when the Job's containers exit)\n`,
  );
  // A Deployment opted out the same way gets no such aside.
  const deploymentRun = await injectText(
    'reviews.yaml',
    deployment('{app: reviews}', '{sidecar.istio.io/inject: "false"}'),
  );
  assert.doesNotMatch(deploymentRun.stderr, /native sidecar/);
});
