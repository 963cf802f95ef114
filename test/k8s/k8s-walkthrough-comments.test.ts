// docs/kubernetes.md: `mutual inject` gives each YAML document back "with its comments, order and
// list indentation". A pod with init containers of its own, one of them a native sidecar with an
// HTTP probe (fluent-bit beside a migration job, as charts ship them), lost every comment and the
// flow style of all its init containers: the probe rewrite changed one item while mutual-init and
// mutual-proxy were put in front, and the list was replaced whole.
import assert from 'node:assert/strict';
import test from 'node:test';
import { parseDocument } from 'yaml';
import { injectText } from './inject-harness.ts';

const MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        # Runs the schema migrations before the app starts.
        - name: migrate
          image: shop/migrate:1.2
          command: ["/migrate", "--up"]   # idempotent
        - name: log-shipper   # native sidecar
          image: fluent/fluent-bit:3.0
          restartPolicy: Always
          ports:
            - {name: metrics, containerPort: 2020}
          readinessProbe:
            httpGet: {path: /api/v1/health, port: metrics}
            periodSeconds: 7   # keep in step with the app
      containers:
        - name: web
          image: shop/web:2.0
`;

test('the init containers of the pod keep their comments and style when a native sidecar probe is rewritten', async () => {
  const run = await injectText('web.yaml', MANIFEST);
  assert.equal(run.code, 0, run.stderr);
  for (const kept of [
    '        # Runs the schema migrations before the app starts.\n        - name: migrate\n',
    // (The YAML printer writes one space before a comment on a line.)
    '          command: ["/migrate", "--up"] # idempotent\n',
    '        - name: log-shipper # native sidecar\n',
    '            - {name: metrics, containerPort: 2020}\n',
    '            periodSeconds: 7 # keep in step with the app\n',
  ]) {
    assert.ok(run.stdout.includes(kept), `lost ${JSON.stringify(kept)} in:\n${run.stdout}`);
  }
  // And the injection itself is as before: mutual-init, mutual-proxy, then the pod's own, the
  // sidecar's probe pointed at the proxy.
  const pod = (parseDocument(run.stdout).toJS() as { spec: { template: { spec: PodSpec } } }).spec.template
    .spec;
  assert.deepEqual(
    pod.initContainers.map((container) => container.name),
    ['mutual-init', 'mutual-proxy', 'migrate', 'log-shipper'],
  );
  assert.deepEqual(pod.initContainers[3]?.readinessProbe, {
    httpGet: { path: '/app-health/log-shipper/readyz', port: 4191, scheme: 'HTTP' },
    periodSeconds: 7,
  });
  assert.deepEqual(pod.initContainers[2], {
    name: 'migrate',
    image: 'shop/migrate:1.2',
    command: ['/migrate', '--up'],
  });
});

interface PodSpec {
  initContainers: { name: string; readinessProbe?: unknown }[];
}
