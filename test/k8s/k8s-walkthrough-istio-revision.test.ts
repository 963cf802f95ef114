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
