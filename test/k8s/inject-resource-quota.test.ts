// An injected pod in a namespace whose ResourceQuota counts limits (limits.cpu, limits.memory, as
// multi-tenant clusters set): the quota admission refuses a pod unless every container, init
// containers included, sets each counted resource ("must specify limits.cpu for: mutual-init",
// kubernetes pkg/quota/v1/evaluator/core/pods.go, enforcePodContainerConstraints). With the proxy's
// limits given (--proxy-cpu-limit, --proxy-memory-limit or the annotations), every container
// Mutual adds must have them; so must requests for a quota on requests.
import assert from 'node:assert/strict';
import test from 'node:test';
import { parseAllDocuments } from 'yaml';
import { injectText } from './inject-harness.ts';

interface ContainerLike {
  name: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

/** What the quota admission says about a pod for these counted resources, or undefined when admitted. */
function quotaRefusal(
  spec: { containers: ContainerLike[]; initContainers?: ContainerLike[] },
  counted: string[],
) {
  const missing = new Map<string, string[]>();
  for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
    for (const resource of counted) {
      const [kind, name] = resource.includes('.') ? resource.split('.') : ['requests', resource];
      const set = kind === 'limits' ? container.resources?.limits : container.resources?.requests;
      if (set?.[name as string] === undefined)
        missing.set(resource, [...(missing.get(resource) ?? []), container.name]);
    }
  }
  return missing.size === 0
    ? undefined
    : [...missing].map(([resource, names]) => `must specify ${resource} for: ${names.join(',')}`).join('; ');
}

const APP = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: tenant-a}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 500m, memory: 256Mi}
`;

test('with the proxy limits given, an injected pod passes a ResourceQuota on limits.cpu and limits.memory (and on requests): mutual-init has its own', async () => {
  const run = await injectText('web.yaml', APP, [
    '--proxy-cpu-limit',
    '500m',
    '--proxy-memory-limit',
    '256Mi',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const deployment = parseAllDocuments(run.stdout)[0]!.toJS() as {
    spec: { template: { spec: { containers: ContainerLike[]; initContainers: ContainerLike[] } } };
  };
  const spec = deployment.spec.template.spec;
  assert.deepEqual(
    spec.initContainers.map((container) => container.name),
    ['mutual-init', 'mutual-proxy'],
  );
  assert.equal(
    quotaRefusal(spec, ['limits.cpu', 'limits.memory', 'requests.cpu', 'requests.memory']),
    undefined,
  );
  // The annotations do the same per pod.
  const annotated = APP.replace(
    'metadata: {labels: {app: web}}',
    'metadata:\n      labels: {app: web}\n      annotations: {config.mutual.dev/proxy-cpu-limit: "1", config.mutual.dev/proxy-memory-limit: 128Mi}',
  );
  const perPod = await injectText('web.yaml', annotated);
  assert.equal(perPod.code, 0, perPod.stderr);
  const podSpec = (
    parseAllDocuments(perPod.stdout)[0]!.toJS() as {
      spec: { template: { spec: { containers: ContainerLike[]; initContainers: ContainerLike[] } } };
    }
  ).spec.template.spec;
  assert.equal(quotaRefusal(podSpec, ['limits.cpu', 'limits.memory']), undefined);
});

test('with the default resources, an injected pod passes the same quota: every container Mutual adds has requests and limits', async () => {
  const run = await injectText('web.yaml', APP);
  assert.equal(run.code, 0, run.stderr);
  const spec = (
    parseAllDocuments(run.stdout)[0]!.toJS() as {
      spec: { template: { spec: { containers: ContainerLike[]; initContainers: ContainerLike[] } } };
    }
  ).spec.template.spec;
  assert.equal(
    quotaRefusal(spec, ['limits.cpu', 'limits.memory', 'requests.cpu', 'requests.memory']),
    undefined,
  );
});

test('mutual inject with an unusable resource annotation writes nothing, exits non-zero and names the line, annotation, value and an example', async () => {
  const annotated = (value: string) =>
    APP.replace(
      'metadata: {labels: {app: web}}',
      `metadata:\n      labels: {app: web}\n      annotations: {config.mutual.dev/proxy-memory-limit: "${value}"}`,
    );
  const cases: [string, string][] = [
    ['1Gi1', '"1Gi1" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi'],
    ['-512Mi', '"-512Mi" is negative: write e.g. 256Mi or 1Gi'],
    ['', '"" is empty: write e.g. 256Mi or 1Gi, or leave it out for the default (1Gi)'],
    ['１Gi', '"１Gi" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi'],
    ['64Mi', '"64Mi" is below what the proxy uses idle (about 92 MB)'],
  ];
  for (const [value, message] of cases) {
    const run = await injectText('web.yaml', annotated(value));
    assert.equal(run.code, 1, value);
    assert.equal(run.stdout, '', value);
    assert.ok(
      run.stderr.startsWith(
        `error[MUTUAL_K8S_INJECT_ANNOTATION_INVALID]: web.yaml has annotations the injector cannot use:\n  web.yaml:9:59: deployment/web: config.mutual.dev/proxy-memory-limit: ${message}`,
      ),
      `${value}: ${run.stderr}`,
    );
  }
  const flags = await injectText('web.yaml', APP, ['--proxy-memory-request', '2Gi']);
  assert.equal(flags.code, 2);
  assert.equal(flags.stdout, '');
  assert.match(
    flags.stderr,
    /--proxy-memory-request 2Gi is more than the memory limit 1Gi \(--proxy-memory-limit\): Kubernetes refuses a request above its limit/,
  );
});
