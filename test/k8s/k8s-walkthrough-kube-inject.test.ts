// A manifest kept as `istioctl kube-inject` (or `linkerd inject --manual`) wrote it carries the
// other mesh's containers in its pod template. `mutual inject` left it alone with "it already runs
// another mesh's sidecar (istio-proxy)" and no word on what to do; the report now says where the
// sidecar comes from and how to move the workload to Mutual.
import assert from 'node:assert/strict';
import test from 'node:test';
import { injectText } from './inject-harness.ts';

const withContainers = (init: string, main: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: productpage, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: productpage}}
  template:
    metadata:
      labels: {app: productpage}
    spec:
      initContainers: [{name: ${init}, image: mesh/proxy:1}]
      containers:
        - {name: productpage, image: productpage:1}
        - {name: ${main}, image: mesh/proxy:1}
`;

test('istioctl kube-inject output: skipped, saying where the sidecar came from and what to do', async () => {
  const run = await injectText('productpage.yaml', withContainers('istio-init', 'istio-proxy'));
  assert.equal(run.code, 0, run.stderr);
  assert.equal(
    run.stderr,
    "deployment/productpage (productpage.yaml:7): skipped: it already runs another mesh's sidecar (istio-proxy): Istio's injector (namespace label istio-injection or istio.io/rev) or istioctl kube-inject added it; remove that opt-in, or inject the manifest from before, to mesh it with Mutual\n",
  );
});

test('linkerd inject --manual output: the same for Linkerd', async () => {
  const run = await injectText('productpage.yaml', withContainers('linkerd-init', 'linkerd-proxy'));
  assert.match(
    run.stderr,
    /skipped: it already runs another mesh's sidecar \(linkerd-proxy\): Linkerd's injector \(annotation linkerd\.io\/inject on the namespace or pod\) or linkerd inject --manual added it; remove that opt-in, or inject the manifest from before, to mesh it with Mutual/,
  );
});

// Linkerd reads linkerd.io/inject as enabled, ingress (both inject) or disabled, and ignores any
// other value. "false" (a slip for disabled) was taken for Linkerd's opt-in: the pod was skipped
// as if Linkerd would add its proxy, which it does not.
const annotated = (value: string) => `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations: {linkerd.io/inject: "${value}"}
spec:
  containers: [{name: web, image: web:1}]
`;

test("linkerd.io/inject values Linkerd ignores do not make the pod another mesh's", async () => {
  const ignored = await injectText('web.yaml', annotated('false'));
  assert.equal(ignored.stderr, 'pod/web (web.yaml:1): injected\n');
  const ingress = await injectText('web.yaml', annotated('ingress'));
  assert.match(
    ingress.stderr,
    /skipped: annotation linkerd\.io\/inject: ingress asks another mesh to add its sidecar/,
  );
  const disabled = await injectText('web.yaml', annotated('disabled'));
  assert.match(disabled.stderr, /skipped: annotation linkerd\.io\/inject: disabled opts it out of sidecars/);
});
