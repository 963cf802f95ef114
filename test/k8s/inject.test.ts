// `mutual inject` as users run it: golden files for the YAML it prints and the report it writes,
// every printed object validated against the official OpenAPI schemas (kubernetes-models), the
// rendered proxy and init arguments accepted by the real `mutual proxy run` / `proxy init`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments, stringify } from 'yaml';
import { createProgram } from '../../src/cli/index.ts';
import { systemClock } from '../../src/clock.ts';
import { loadProxyConfig, type ProxyFlags } from '../../src/config/index.ts';
import { findPodTemplates, POD_ENV } from '../../src/k8s/index.ts';
import { VERSION } from '../../src/version.ts';
import { repoRoot, runMutual, runMutualInProcess } from '../e2e/run-mutual.ts';

const GOLDEN_DIR = join(repoRoot(), 'test', 'k8s', 'golden');
const isUpdate = process.env.MUTUAL_UPDATE_GOLDEN === '1';
/** The mesh's anchors as `mutual inject --trust-anchors-file` reads them (a root from `mutual ca create`). */
const ANCHORS_FILE = join(GOLDEN_DIR, 'inject-trust-anchors.pem');
const ANCHORS = ['--trust-anchors-file', ANCHORS_FILE];

function inject(args: readonly string[], cwd = GOLDEN_DIR, { withAnchors = true } = {}) {
  return runMutualInProcess(['inject', ...args, ...(withAnchors ? ANCHORS : [])], { cwd });
}

type ModelClass = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/ReplicaSet': ReplicaSet,
  'batch/v1/Job': Job,
  'batch/v1/CronJob': CronJob,
};

/** Every object (and every List item) against its OpenAPI schema; returns how many were checked. */
function validateAll(yamlText: string): number {
  let count = 0;
  const check = (object: { apiVersion?: string; kind?: string; items?: unknown[] }) => {
    if (object.kind === 'List') {
      for (const item of object.items ?? []) check(item as typeof object);
      return;
    }
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    assert.ok(Model, `no schema mapped for ${object.apiVersion}/${object.kind}`);
    new Model(object as never).validate();
    count++;
  };
  for (const doc of parseAllDocuments(yamlText)) {
    assert.equal(doc.errors.length, 0, String(doc.errors[0]));
    check(doc.toJS());
  }
  return count;
}

async function golden(file: string, actual: string): Promise<void> {
  const path = join(GOLDEN_DIR, file);
  if (isUpdate) await writeFile(path, actual);
  assert.equal(actual, await readFile(path, 'utf8'), `${file} differs; MUTUAL_UPDATE_GOLDEN=1 rewrites it`);
}

/** The versioned annotation is the one thing that moves with every release. */
const masked = (text: string) =>
  text
    .replaceAll(`mutual.dev/proxy-injected: ${VERSION}`, 'mutual.dev/proxy-injected: <version>')
    .replaceAll(`"mutual.dev/proxy-injected": "${VERSION}"`, '"mutual.dev/proxy-injected": "<version>"');

/** JSON as `kubectl get -o json` prints it: indented by 4 spaces, a newline at the end. */
const asKubectlJson = (value: unknown) => `${JSON.stringify(value, null, 4)}\n`;

const CASES = [
  { name: 'deployment', injected: 1 },
  { name: 'cronjob', injected: 1 },
  { name: 'annotated-pod', injected: 1 },
  { name: 'host-network', injected: 0 },
  { name: 'multi-doc', injected: 3 },
  { name: 'probes', injected: 2 },
];

for (const c of CASES) {
  test(`golden: mutual inject inject-${c.name}.in.yaml (output and report), every object valid`, async () => {
    const run = await inject([`inject-${c.name}.in.yaml`]);
    assert.equal(run.code, 0, run.stderr);
    await golden(`inject-${c.name}.out.yaml`, masked(run.stdout));
    await golden(`inject-${c.name}.report.txt`, run.stderr);
    assert.equal(run.stderr.split('\n').filter((line) => line.endsWith(': injected')).length, c.injected);
    assert.ok(validateAll(run.stdout) > 0);
  });
}

test('golden: JSON in, JSON out: a kubectl List (written by kubectl create -o json) comes back as JSON indented as kubectl does, injected as its YAML would be', async () => {
  const run = await inject(['inject-kubectl-list.in.json']);
  assert.equal(run.code, 0, run.stderr);
  await golden('inject-kubectl-list.out.json', masked(run.stdout));
  assert.equal(run.stderr, 'deployment/web (inject-kubectl-list.in.json:22): injected\n');
  const list = JSON.parse(run.stdout) as { items: unknown[] };
  assert.equal(
    run.stdout,
    asKubectlJson(list),
    'JSON.parse takes it and it is laid out as kubectl prints JSON',
  );
  assert.equal(validateAll(run.stdout), 2);
  // The same objects given as YAML are injected to the same values.
  const input = JSON.parse(await readFile(join(GOLDEN_DIR, 'inject-kubectl-list.in.json'), 'utf8'));
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'list.yaml'), stringify(input));
    const yaml = await inject(['list.yaml'], dir);
    assert.equal(yaml.code, 0, yaml.stderr);
    assert.doesNotMatch(yaml.stdout, /^\s*\{/, 'YAML in, YAML out');
    assert.deepEqual(parseAllDocuments(yaml.stdout)[0]?.toJS(), list);
    // Injected again: nothing to do, printed byte for byte.
    await writeFile(join(dir, 'injected.json'), run.stdout);
    const again = await inject(['injected.json'], dir);
    assert.equal(again.stdout, run.stdout);
    assert.match(again.stderr, /already injected/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('JSON documents keep their format one by one: JSON objects one after another (a stream kubectl reads), and JSON among YAML documents; flow-style YAML stays YAML', async () => {
  const pod = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { containers: [{ name: 'app', image: 'nginx' }] },
  });
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 's' },
    spec: { ports: [{ port: 80 }] },
  };
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    // Two objects one after the other, the second on one line: each printed back as kubectl would.
    await writeFile(join(dir, 'stream.json'), `${asKubectlJson(pod('a'))}${JSON.stringify(pod('b'))}\n`);
    const stream = await inject(['stream.json'], dir);
    assert.equal(stream.code, 0, stream.stderr);
    assert.equal(stream.stderr, 'pod/a (stream.json:1): injected\npod/b (stream.json:16): injected\n');
    const [a, b] = stream.stdout.split(/\n(?=\{)/).map((text) => JSON.parse(text));
    assert.equal(stream.stdout, `${asKubectlJson(a)}${asKubectlJson(b)}`);
    assert.deepEqual([a.metadata.name, b.metadata.name], ['a', 'b']);
    assert.equal(validateAll(stream.stdout.replace(/\n(?=\{)/, '\n---\n')), 2);

    // A YAML stream: a JSON pod, an unchanged JSON Service (byte for byte) and a flow-style YAML pod.
    const text = [
      `# from kubectl\n${JSON.stringify(pod('c'))}  # trailing comment\n`,
      `${JSON.stringify(service)}\n`,
      '{apiVersion: v1, kind: Pod, metadata: {name: d}, spec: {containers: [{name: app, image: nginx}]}}\n',
    ].join('---\n');
    await writeFile(join(dir, 'mixed.yaml'), text);
    const mixed = await inject(['mixed.yaml'], dir);
    assert.equal(mixed.code, 0, mixed.stderr);
    const [c, s, d] = mixed.stdout.split(/^---\n/m);
    assert.match(c ?? '', /^# from kubectl\n\{\n {4}"apiVersion": "v1",\n/);
    assert.match(c ?? '', /\n\} {2}# trailing comment\n$/);
    assert.equal(s, `${JSON.stringify(service)}\n`);
    assert.match(d ?? '', /^apiVersion: v1\nkind: Pod\n/, 'flow-style YAML is YAML, printed as YAML');
    assert.equal(validateAll(mixed.stdout), 3);
    assert.equal(mixed.stderr.match(/: injected$/gm)?.length, 2);

    await writeFile(join(dir, 'broken.json'), '{\n    "kind": "Pod"\n    "apiVersion": "v1"\n}\n');
    const broken = await inject(['broken.json'], dir);
    assert.equal(broken.code, 1);
    assert.equal(broken.stdout, '');
    assert.match(
      broken.stderr,
      /^error\[MUTUAL_K8S_INJECT_YAML_INVALID\]: broken\.json is not valid JSON \(nor YAML\):\n {2}broken\.json:3:5: Missing , between flow map items\n/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('golden: an injected file injected again is printed byte for byte, every workload "already injected"', async () => {
  const first = await inject(['inject-deployment.in.yaml']);
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'injected.yaml'), first.stdout);
    const again = await inject(['injected.yaml'], dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);
    await golden('inject-already-injected.report.txt', again.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('documents without pods pass through byte for byte, comments, flow style and all', async () => {
  const text =
    '# settings\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}   # odd spacing kept\ndata:\n  k: "v"\n---\nkind: Unknown\nspec: {template: {spec: {containers: []}}}\n';
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'plain.yaml'), text);
    const run = await inject(['plain.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, text);
    assert.match(run.stderr, /no pods or workloads found; printed unchanged/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an app container whose probe is rewritten keeps the rest as written: comments, quotes, flow lists and their spacing, long lines unfolded (Helm chart output)', async () => {
  const container = [
    '        - name: app',
    '          # pinned by the release pipeline',
    '          image: "nginx:1.16.0"',
    '          securityContext:',
    '            {}',
    '          command: ["nginx", "-g", "daemon off;"]',
    '          args:',
    '            - sh -c "echo this argument is a long line with spaces, well past the eighty columns a printer folds at"',
    '            - --banner=another long plain scalar with spaces that a YAML printer would fold over two or more lines',
    '          ports:',
    '            - name: http',
    '              containerPort: 80',
    '          readinessProbe:',
    '            httpGet:',
    '              path: /',
    '              port: http',
    '        - name: sidecar # ships logs',
    "          image: 'fluent/fluent-bit:3.0'",
    '          readinessProbe: {exec: {command: ["true"]}}',
  ];
  const text = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: app}',
    'spec:',
    '  selector: {matchLabels: {app: app}}',
    '  template:',
    '    metadata: {labels: {app: app}}',
    '    spec:',
    '      containers:',
    ...container,
    '',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'chart.yaml'), text);
    const run = await inject(['chart.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    // Only the probe changes (and Helm's empty map on its own line, which YAML prints as `{}`).
    const expected = container
      .join('\n')
      .replace('securityContext:\n            {}', 'securityContext: {}')
      .replace(
        '              path: /\n              port: http',
        '              path: /app-health/app/readyz\n              port: 4191\n              scheme: HTTP',
      );
    assert.ok(run.stdout.includes(`      containers:\n${expected}\n`), run.stdout);
    assert.match(run.stdout, /^ {2}selector: \{matchLabels: \{app: app\}\}$/m);
    assert.equal(validateAll(run.stdout), 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("YAML 1.1 scalars are read as kubectl reads them: Helm's `defaultMode: 0755` stays octal (493) in an injected pod, `hostNetwork: yes` is true", async () => {
  // Modelled on `helm template bitnami/redis` (Apache-2.0): configMap volumes with octal modes.
  const text = [
    '# Source: redis/templates/master/application.yaml',
    'apiVersion: apps/v1',
    'kind: StatefulSet',
    'metadata: {name: redis-master}',
    'spec:',
    '  serviceName: redis-headless',
    '  selector: {matchLabels: {app: redis}}',
    '  template:',
    '    metadata: {labels: {app: redis}}',
    '    spec:',
    '      containers:',
    '        - name: redis',
    '          image: docker.io/bitnami/redis:7.0.4',
    '          args: [--appendonly, yes]',
    '      volumes:',
    '        - name: start-scripts',
    '          configMap:',
    '            name: redis-scripts',
    '            defaultMode: 0755',
    '            items: [{key: start.sh, path: start.sh, mode: 0700}]',
    '---',
    'apiVersion: v1',
    'kind: Pod',
    'metadata: {name: node-agent}',
    'spec:',
    '  hostNetwork: yes',
    '  containers: [{name: agent, image: agent}]',
    '',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'redis.yaml'), text);
    const run = await inject(['redis.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    // kubectl (YAML 1.1) reads 0755 as 493; 755 would be refused (defaultMode is at most 0777).
    assert.match(run.stdout, /^ {12}defaultMode: 0755$/m);
    assert.match(run.stdout, /mode: 0700/);
    const [statefulSet] = parseAllDocuments(run.stdout, { version: '1.1' }).map((doc) => doc.toJS());
    const volume = statefulSet.spec.template.spec.volumes[0];
    assert.equal(volume.configMap.defaultMode, 0o755);
    assert.equal(volume.configMap.items[0].mode, 0o700);
    // What kubectl reads as a boolean is written as it was.
    assert.match(run.stdout, /args: \[--appendonly, yes\]/);
    // `hostNetwork: yes` is true to kubectl: the pod is left alone, not given iptables rules.
    assert.match(run.stderr, /pod\/node-agent \(redis\.yaml:\d+\): skipped: hostNetwork: true/);
    assert.ok(run.stdout.endsWith(text.slice(text.indexOf('---\n'))), run.stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('YAML anchors and aliases: an aliased pod template part is copied before injection, the anchor and its other uses stay as written', async () => {
  const text = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    '  name: web',
    '  labels: &labels',
    '    app: web',
    'spec:',
    '  selector:',
    '    matchLabels: *labels',
    '  template:',
    '    metadata:',
    '      labels: *labels   # the same labels',
    '    spec:',
    '      containers:',
    '        - name: app',
    '          image: nginx',
    '',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'anchors.yaml'), text);
    const run = await inject(['anchors.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^deployment\/web \(anchors\.yaml:11\): injected$/m);
    assert.match(run.stdout, /^ {2}labels: &labels\n {4}app: web\n/m);
    assert.match(run.stdout, /^ {4}matchLabels: \*labels$/m);
    const object = parseAllDocuments(run.stdout)[0]?.toJS() as {
      metadata: { labels: Record<string, string> };
      spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: object } } };
    };
    assert.deepEqual(object.metadata.labels, { app: 'web' });
    assert.deepEqual(object.spec.selector.matchLabels, { app: 'web' }, 'the selector is not changed');
    assert.deepEqual(object.spec.template.metadata.labels, {
      app: 'web',
      'mutual.dev/proxy-injected': 'true',
    });
    assert.equal(validateAll(run.stdout), 1);
    await writeFile(join(dir, 'injected.yaml'), run.stdout);
    const again = await inject(['injected.yaml'], dir);
    assert.equal(again.stdout, run.stdout);
    assert.match(again.stderr, /already injected/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('YAML merge keys are read as kubectl reads them: a pod whose metadata is `<<: *base` keeps the merged labels; an alias without its anchor is MUTUAL_K8S_INJECT_YAML_INVALID at file:line', async () => {
  const text = [
    'apiVersion: v1',
    'kind: List',
    'items:',
    '  - apiVersion: v1',
    '    kind: Pod',
    '    metadata: &meta',
    '      name: a',
    '      labels: {app: shop}',
    '    spec: {containers: [{name: a, image: b}]}',
    '  - apiVersion: v1',
    '    kind: Pod',
    '    metadata:',
    '      <<: *meta',
    '      name: b',
    '    spec: {containers: [{name: a, image: b}]}',
    '',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'merge.yaml'), text);
    const run = await inject(['merge.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    const list = parseAllDocuments(run.stdout)[0]?.toJS({ maxAliasCount: -1 }) as {
      items: { metadata: { name: string; labels: Record<string, string> } }[];
    };
    assert.deepEqual(
      list.items.map((item) => [item.metadata.name, item.metadata.labels]),
      [
        ['a', { app: 'shop', 'mutual.dev/proxy-injected': 'true' }],
        ['b', { app: 'shop', 'mutual.dev/proxy-injected': 'true' }],
      ],
    );
    assert.equal(validateAll(run.stdout), 2);
    await writeFile(join(dir, 'dangling.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: *meta\n');
    const dangling = await inject(['dangling.yaml'], dir);
    assert.equal(dangling.code, 1);
    assert.equal(dangling.stdout, '');
    assert.match(
      dangling.stderr,
      /^error\[MUTUAL_K8S_INJECT_YAML_INVALID\]: dangling\.yaml is not valid YAML:\n {2}dangling\.yaml:3:11: an alias \(\*name\) whose anchor/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** What `mutual inject` says of a Rollout, whose pods only the webhook injects. */
const ROLLOUT_NOTE =
  'a Rollout is not a kind mutual inject changes (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob), so its pod template is printed unchanged and its pods run without the proxy unless the webhook injects them as they are created: label the namespace mutual.dev/inject=enabled, or annotate the template mutual.dev/inject: enabled';

test('a workload of another kind with a pod template (an Argo Rollout, an OpenShift DeploymentConfig, in a List too) gets a note naming it: printed unchanged, and how its pods get the proxy', async () => {
  // Modelled on the Argo Rollouts getting-started example (Apache-2.0).
  const rollout = [
    'apiVersion: argoproj.io/v1alpha1',
    'kind: Rollout',
    'metadata: {name: rollouts-demo}',
    'spec:',
    '  selector: {matchLabels: {app: rollouts-demo}}',
    '  template:',
    '    metadata: {labels: {app: rollouts-demo}}',
    '    spec: {containers: [{name: rollouts-demo, image: argoproj/rollouts-demo:blue}]}',
    '  strategy: {canary: {steps: [{setWeight: 20}, {pause: {}}]}}',
  ].join('\n');
  const text = [
    rollout,
    '---',
    'apiVersion: v1',
    'kind: List',
    'items:',
    '  - apiVersion: apps.openshift.io/v1',
    '    kind: DeploymentConfig',
    '    metadata: {name: legacy}',
    '    spec: {template: {spec: {containers: [{name: legacy, image: legacy}]}}}',
    '  - {apiVersion: argoproj.io/v1alpha1, kind: Rollout, metadata: {name: by-ref}, spec: {workloadRef: {kind: Deployment, name: x}}}',
    '',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'rollout.yaml'), text);
    const run = await inject(['rollout.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, text);
    assert.equal(
      run.stderr,
      [
        'rollout.yaml: no pods or workloads found; printed unchanged',
        `rollout/rollouts-demo (rollout.yaml:7): note: ${ROLLOUT_NOTE}`,
        `deploymentconfig/legacy (rollout.yaml:17): note: ${ROLLOUT_NOTE.replace('a Rollout', 'a DeploymentConfig')}\n`,
      ].join('\n'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('YAML anchors shared between objects: each injected template gets its own copy, injected once; the Rollout, the Service selector and the merged-from metadata that share them are unchanged', async () => {
  const text = [
    'apiVersion: v1',
    'kind: List',
    'items:',
    '  - apiVersion: apps/v1',
    '    kind: Deployment',
    '    metadata: {name: a}',
    '    spec:',
    '      selector: {matchLabels: {app: a}}',
    '      template: &pod',
    '        metadata:',
    '          labels: &labels {app: a}',
    '        spec:',
    '          initContainers: [{name: migrate, image: busybox}]',
    '          containers:',
    '            - name: app',
    '              image: nginx',
    '              readinessProbe: {httpGet: {path: /ready, port: 8080}}',
    '          volumes: [{name: data, emptyDir: {}}]',
    '  - apiVersion: apps/v1',
    '    kind: Deployment',
    '    metadata: {name: b}',
    '    spec:',
    '      selector: {matchLabels: {app: a}}',
    '      template: *pod',
    '  - apiVersion: argoproj.io/v1alpha1',
    '    kind: Rollout',
    '    metadata: {name: r}',
    '    spec: {template: *pod}',
    '  - apiVersion: v1',
    '    kind: Service',
    '    metadata: {name: a}',
    '    spec: {selector: *labels, ports: [{port: 80}]}',
    '---',
    'apiVersion: v1',
    'kind: List',
    'items:',
    '  - apiVersion: v1',
    '    kind: ConfigMap',
    '    metadata: &base {name: c, labels: {team: x}}',
    '  - apiVersion: v1',
    '    kind: Pod',
    '    metadata: &meta',
    '      <<: *base',
    '      name: p',
    '    spec: {containers: [{name: a, image: b}]}',
    '  - apiVersion: v1',
    '    kind: Service',
    '    metadata: *meta',
    '    spec: {ports: [{port: 80}]}',
    '',
  ].join('\n');
  type Template = { metadata: { labels: object }; spec: { initContainers: { name: string }[] } };
  type Item = { kind: string; metadata: object; spec: { template?: Template; selector?: object } };
  const read = (yamlText: string) =>
    parseAllDocuments(yamlText, { merge: true }).map(
      (doc) => (doc.toJS({ maxAliasCount: -1 }) as { items: Item[] }).items,
    );
  const [given, givenMerge] = read(text);
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'shared.yaml'), text);
    const run = await inject(['shared.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stderr,
      [
        'deployment/a (shared.yaml:10): injected',
        'deployment/b (shared.yaml:24): injected',
        `rollout/r (shared.yaml:28): note: ${ROLLOUT_NOTE}`,
        'pod/p (shared.yaml:40): injected\n',
      ].join('\n'),
    );
    const [apps, merged] = read(run.stdout);
    const [a, b, rollout, service] = apps ?? [];
    // Each Deployment injected exactly once: one mutual-init and one mutual-proxy before the app's own.
    for (const deployment of [a, b]) {
      const names = deployment?.spec.template?.spec.initContainers.map((container) => container.name);
      assert.deepEqual(names, ['mutual-init', 'mutual-proxy', 'migrate']);
    }
    assert.deepEqual(b?.spec.template, a?.spec.template);
    assert.deepEqual(rollout, given?.[2], 'the Rollout (not injected) keeps the template as written');
    assert.deepEqual(service, given?.[3], 'the Service selector keeps the labels as written');
    assert.deepEqual(merged?.[0], givenMerge?.[0]);
    assert.deepEqual(merged?.[2], givenMerge?.[2], 'the Service that took the metadata by alias');
    assert.deepEqual(merged?.[1]?.metadata, {
      name: 'p',
      labels: { team: 'x', 'mutual.dev/proxy-injected': 'true' },
      annotations: { 'mutual.dev/inject': 'enabled', 'mutual.dev/proxy-injected': VERSION },
    });
    await writeFile(join(dir, 'injected.yaml'), run.stdout);
    const again = await inject(['injected.yaml'], dir);
    assert.equal(again.stdout, run.stdout);
    assert.equal(again.stderr.match(/already injected/g)?.length, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('aliases are read as kubectl reads them: one anchor used by 120 pods is fine; an alias inside its own anchor or a "billion laughs" document is MUTUAL_K8S_INJECT_YAML_INVALID at file:line:col, nothing printed', async () => {
  const pods = Array.from(
    { length: 120 },
    (_, i) =>
      `  - {apiVersion: v1, kind: Pod, metadata: {name: p${i}, labels: *l}, spec: {containers: [{name: a, image: b}]}}`,
  );
  const laughs = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (const [name, previous] of ['b', 'c', 'd', 'e', 'f', 'g', 'h'].map((n, i) => [n, 'abcdefg'[i]])) {
    laughs.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(', ')}]`);
  }
  const files: Record<string, string> = {
    'shared.yaml': [
      'apiVersion: v1',
      'kind: List',
      'items:',
      '  - {apiVersion: v1, kind: ConfigMap, metadata: {labels: &l {app: a}}}',
      ...pods,
      '',
    ].join('\n'),
    'self.yaml': 'kind: Pod\nmetadata: &m {name: x, self: [*m]}\nspec: {containers: [{name: a, image: b}]}\n',
    'laughs.yaml': `${laughs.join('\n')}\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b}], x: *h}\n`,
  };
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const shared = await inject(['shared.yaml'], dir);
    assert.equal(shared.code, 0, shared.stderr);
    assert.equal(shared.stderr.match(/: injected$/gm)?.length, 120);
    const self = await inject(['self.yaml'], dir);
    assert.equal(self.code, 1);
    assert.equal(self.stdout, '');
    assert.match(
      self.stderr,
      /^error\[MUTUAL_K8S_INJECT_YAML_INVALID\]: self\.yaml is not valid YAML:\n {2}self\.yaml:2:31: the alias \*m is inside the node its anchor &m is set on/,
    );
    const bomb = await inject(['laughs.yaml'], dir);
    assert.equal(bomb.code, 1);
    assert.equal(bomb.stdout, '');
    assert.match(
      bomb.stderr,
      /\n {2}laughs\.yaml:2:8: its aliases \(\*name\) expand to more than 1000000 values \(aliases of aliases, as in a "billion laughs" attack\)/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

interface ProxyContainer {
  name: string;
  args: string[];
  env?: { name: string; value?: string }[];
}

/** The mutual-proxy container of the `index`th injected workload of a golden input. */
async function renderedProxy(file: string, index = 0): Promise<ProxyContainer> {
  const run = await inject([file]);
  assert.equal(run.code, 0, run.stderr);
  const object = parseAllDocuments(run.stdout)[index]?.toJS() as {
    spec: { initContainers?: ProxyContainer[]; template?: { spec: { initContainers: ProxyContainer[] } } };
  };
  const containers = object.spec.template?.spec.initContainers ?? object.spec.initContainers ?? [];
  const proxy = containers.find((c) => c.name === 'mutual-proxy');
  assert.ok(proxy, `no mutual-proxy in ${file}`);
  return proxy;
}

/**
 * The proxy container as the kubelet starts it: $(VAR) expanded in the arguments, plain `value`
 * variables in the environment, both through `mutual proxy run`'s real flags and config loader.
 */
async function loadRenderedProxy(proxy: ProxyContainer, envOverride: Record<string, string> = {}) {
  const args = proxy.args.map((arg) =>
    arg.replaceAll(`$(${POD_ENV.namespace})`, 'demo').replaceAll(`$(${POD_ENV.serviceAccount})`, 'default'),
  );
  assert.deepEqual(args.slice(0, 2), ['proxy', 'run']);
  const env = Object.fromEntries(
    (proxy.env ?? []).flatMap((entry) => (entry.value === undefined ? [] : [[entry.name, entry.value]])),
  );
  const program = await createProgram({
    clock: systemClock,
    cwd: '/',
    isColor: false,
    write: () => {},
    writeError: () => {},
    setExitCode: () => {},
    untilShutdown: () => new Promise(() => {}),
  });
  const runCommand = program.commands
    .find((c) => c.name() === 'proxy')
    ?.commands.find((c) => c.name() === 'run');
  assert.ok(runCommand);
  const parsed = runCommand.parseOptions(args.slice(2));
  assert.deepEqual(parsed.unknown, [], 'every flag the injector renders is a `mutual proxy run` flag');
  return loadProxyConfig(runCommand.opts() as ProxyFlags, { ...env, ...envOverride });
}

test('the rendered mutual-proxy arguments and environment (after Kubernetes expands $(VAR)) are accepted by the real proxy configuration, anchors included', async () => {
  const config = await loadRenderedProxy(await renderedProxy('inject-annotated-pod.in.yaml'));
  assert.equal(config.credentials.kind, 'identity-service');
  // The anchors come from the environment, not from a ConfigMap mounted in the pod's namespace.
  assert.equal(
    config.credentials.kind === 'identity-service' && config.credentials.identityBundlePem,
    await readFile(ANCHORS_FILE, 'utf8'),
  );
  assert.equal(
    config.credentials.kind === 'identity-service' && config.credentials.identityBundleFile,
    undefined,
  );
  assert.equal(
    config.credentials.kind === 'identity-service' && config.credentials.spiffeId,
    'spiffe://cluster.local/ns/demo/sa/default',
  );
  assert.equal(config.mode, 'STRICT');
  assert.deepEqual([...config.opaquePorts], [5432, 6379]);
  assert.deepEqual(config.adminListen, { host: '0.0.0.0', port: 4191 });
  assert.deepEqual(config.inboundListen, { host: '0.0.0.0', port: 4143 });
  assert.deepEqual(config.outboundListen, { host: '127.0.0.1', port: 4140 });
  assert.equal(config.appProbes.size, 0);
});

test('the rewritten probes reach the real proxy configuration: each HTTP(S), TCP and gRPC probe at its /app-health path, the original port, path, headers, service and timeout', async () => {
  const web = await loadRenderedProxy(await renderedProxy('inject-probes.in.yaml', 0));
  assert.deepEqual(Object.fromEntries(web.appProbes), {
    '/app-health/web/livez': { port: 8080, path: '/livez', headers: [], timeoutMs: 1000 },
    '/app-health/web/readyz': {
      port: 8080,
      path: '/readyz?verbose=1',
      headers: [['X-Probe', 'kubelet']],
      timeoutMs: 2000,
    },
    '/app-health/web/startupz': { port: 8080, path: '/started', headers: [], timeoutMs: 1000 },
    '/app-health/admin/livez': {
      scheme: 'HTTPS',
      port: 9443,
      path: '/tls-health',
      headers: [],
      timeoutMs: 1000,
    },
    '/app-health/admin/readyz': { kind: 'tcp', port: 9443, path: '', headers: [], timeoutMs: 1000 },
    '/app-health/cart/livez': {
      kind: 'grpc',
      port: 50051,
      path: '',
      headers: [],
      grpcService: 'shop.v1.Cart',
      timeoutMs: 3000,
    },
  });
  // Every probe rewritten: no path of the app's needs to be exempt from authorization.
  assert.deepEqual(web.probePaths, []);
  const legacy = await loadRenderedProxy(await renderedProxy('inject-probes.in.yaml', 1));
  assert.equal(legacy.appProbes.size, 0);
  assert.deepEqual(legacy.probePaths, ['/health']);
});

test('probes the API server accepts but written loosely (a path without "/", a space in it, timeoutSeconds 0) are rewritten as the kubelet would send them, and the proxy starts', async () => {
  const probe = (path: string, extra = '') => `{httpGet: {path: "${path}", port: 8080}${extra}}`;
  const text = [
    'apiVersion: v1',
    'kind: Pod',
    'metadata: {name: web}',
    'spec:',
    '  containers:',
    '    - name: web',
    '      image: web',
    `      livenessProbe: ${probe('healthz')}`,
    `      readinessProbe: ${probe('/ready now?verbose=1', ', timeoutSeconds: 0')}`,
    // Nothing the kubelet would send: left pointing at the app rather than stop the proxy.
    `      startupProbe: ${probe('/started', ', timeoutSeconds: 7200')}`,
    '',
  ].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'loose.yaml'), text);
    const proxy = await renderedProxy(join(dir, 'loose.yaml'));
    const config = await loadRenderedProxy(proxy);
    assert.deepEqual(Object.fromEntries(config.appProbes), {
      '/app-health/web/livez': { port: 8080, path: '/healthz', headers: [], timeoutMs: 1000 },
      '/app-health/web/readyz': { port: 8080, path: '/ready%20now?verbose=1', headers: [], timeoutMs: 1000 },
    });
    assert.deepEqual(config.probePaths, ['/started']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a bad PEM or bad probes in the proxy environment: MUTUAL_PROXY_CONFIG_INVALID naming the variable and the fix', async () => {
  const proxy = await renderedProxy('inject-probes.in.yaml', 0);
  const keyPem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n';
  const cases: [Record<string, string>, RegExp][] = [
    [
      { MUTUAL_PROXY_IDENTITY_BUNDLE_PEM: 'not pem' },
      /MUTUAL_PROXY_IDENTITY_BUNDLE_PEM\) is not a usable trust bundle \[MUTUAL_PKI_PEM_MALFORMED\]/,
    ],
    [{ MUTUAL_PROXY_IDENTITY_BUNDLE_PEM: keyPem }, /MUTUAL_PROXY_IDENTITY_BUNDLE_PEM.*this is a private key/],
    [{ MUTUAL_PROXY_APP_PROBES: '{"/app-health/web/livez":' }, /MUTUAL_PROXY_APP_PROBES\) is not JSON/],
    [
      { MUTUAL_PROXY_APP_PROBES: '{"/app-health/web/livez":{"httpGet":{"path":"/","port":"http"}}}' },
      /MUTUAL_PROXY_APP_PROBES\) "\/app-health\/web\/livez": httpGet\.port "http" must be a number/,
    ],
  ];
  for (const [env, message] of cases) {
    await assert.rejects(
      () => loadRenderedProxy(proxy, env),
      (error: { code?: string; message?: string }) =>
        error.code === 'MUTUAL_PROXY_CONFIG_INVALID' && message.test(error.message ?? ''),
      JSON.stringify(env),
    );
  }
});

test('the rendered mutual-init arguments run in the real `mutual proxy init --dry-run`: admin port and skips exempted', async () => {
  const run = await inject(['inject-annotated-pod.in.yaml']);
  const pod = parseAllDocuments(run.stdout)[0]?.toJS() as {
    spec: { initContainers: { name: string; args: string[] }[] };
  };
  const init = pod.spec.initContainers.find((c) => c.name === 'mutual-init');
  assert.ok(init);
  const dry = await runMutual([...init.args, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /-A MUTUAL_INBOUND -p tcp --dport 4191 -j RETURN/);
  assert.match(dry.stdout, /-A MUTUAL_INBOUND -p tcp --dport 22 -j RETURN/);
  assert.match(dry.stdout, /-A MUTUAL_OUTBOUND -p tcp --dport 8000:8100 -j RETURN/);
  assert.match(dry.stdout, /-A MUTUAL_OUTBOUND -d 169\.254\.169\.254\/32 -j RETURN/);
  assert.match(dry.stdout, /-A MUTUAL_OUTBOUND -m owner --uid-owner 2102 -j RETURN/);
});

test('large manifests: a 5 MiB file is injected and its output read again (the 4 MiB limit of key files does not apply); 64 MiB is the limit for a file, /dev/zero and stdin alike, nothing printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    const deployment = await readFile(join(GOLDEN_DIR, 'inject-deployment.in.yaml'), 'utf8');
    const big = `${deployment}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: ${'x'.repeat(5 * 1024 * 1024)}\n`;
    await writeFile(join(dir, 'big.yaml'), big);
    const first = await inject(['big.yaml'], dir);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /: injected$/m);
    await writeFile(join(dir, 'injected.yaml'), first.stdout);
    const again = await inject(['injected.yaml'], dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, first.stdout);
    assert.match(again.stderr, /: skipped: already injected$/m);
    // A sparse file past the limit is refused by its size; /dev/zero has none and is cut off.
    await writeFile(join(dir, 'huge.yaml'), '');
    await truncate(join(dir, 'huge.yaml'), 64 * 1024 * 1024 + 1);
    for (const file of [join(dir, 'huge.yaml'), '/dev/zero']) {
      const refused = await inject([file], dir);
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, '');
      assert.match(refused.stderr, /MUTUAL_IO_READ_FAILED.*at most 64 MiB are read: inject it in parts/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'mutual.js'), 'inject', '-', ...ANCHORS], {
    timeout: 30_000,
  });
  child.stdin.on('error', () => {}); // it stops reading at the limit: EPIPE here is expected
  child.stdin.end(Buffer.alloc(65 * 1024 * 1024, 'a'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'close');
  assert.equal(code, 1, stderr);
  assert.equal(stdout, '');
  assert.match(stderr, /MUTUAL_IO_READ_FAILED.*<stdin> is more than 67108864 bytes; at most 64 MiB are read/);
});

test('stdin: `mutual inject -` reads the manifests from stdin (the real binary)', async () => {
  const input = await readFile(join(GOLDEN_DIR, 'inject-cronjob.in.yaml'), 'utf8');
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'mutual.js'), 'inject', '-', ...ANCHORS], {
    timeout: 30_000,
  });
  child.stdin.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code] = await once(child, 'close');
  const run = { code, stdout, stderr };
  assert.equal(run.code, 0, run.stderr);
  assert.equal(masked(run.stdout), await readFile(join(GOLDEN_DIR, 'inject-cronjob.out.yaml'), 'utf8'));
  assert.match(run.stderr, /^cronjob\/report \(<stdin>:11\): injected$/m);
});

test('stdin: `kubectl get -o json | mutual inject - | kubectl apply -f -` gets JSON back (the real binary)', async () => {
  const input = await readFile(join(GOLDEN_DIR, 'inject-kubectl-list.in.json'), 'utf8');
  const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'mutual.js'), 'inject', '-', ...ANCHORS], {
    timeout: 30_000,
  });
  child.stdin.end(input);
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const [code] = await once(child, 'close');
  assert.equal(code, 0);
  assert.equal(masked(stdout), await readFile(join(GOLDEN_DIR, 'inject-kubectl-list.out.json'), 'utf8'));
});

test('bad YAML: MUTUAL_K8S_INJECT_YAML_INVALID with file:line:column, nothing printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(
      join(dir, 'broken.yaml'),
      'apiVersion: v1\nkind: Pod\n---\nmetadata:\n  name: a\n    b: c\nspec: {}\n',
    );
    const run = await inject(['broken.yaml'], dir);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /^error\[MUTUAL_K8S_INJECT_YAML_INVALID\]: broken\.yaml is not valid YAML:\n {2}broken\.yaml:5:9: Nested mappings are not allowed in compact mappings\n/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('wrong Kubernetes types (annotations or labels as a list, containers as a string): MUTUAL_K8S_INJECT_YAML_INVALID naming each with file:line, nothing printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    const text = [
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    - a\n    - b\n  labels: [x]\nspec:\n  containers: [{name: a, image: b}]\n',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers: nope\n',
    ].join('---\n');
    await writeFile(join(dir, 'typed.yaml'), text);
    const run = await inject(['typed.yaml'], dir);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /^error\[MUTUAL_K8S_INJECT_YAML_INVALID\]: typed\.yaml has pod fields missing or of the wrong Kubernetes type/,
    );
    assert.match(
      run.stderr,
      /typed\.yaml:6:5: pod\/p: metadata\.annotations is a list; it must be a map of key: value lines/,
    );
    assert.match(run.stderr, /typed\.yaml:8:11: pod\/p: metadata\.labels is a list; it must be a map/);
    assert.match(
      run.stderr,
      /typed\.yaml:19:19: deployment\/d: spec\.containers is the string "nope"; it must be a list of items/,
    );
    assert.doesNotMatch(run.stderr, /"0"|no containers/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad annotations: MUTUAL_K8S_INJECT_ANNOTATION_INVALID naming each with file:line, nothing printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    const text =
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    config.mutual.dev/default-mode: strict\n    config.mutual.dev/opaque-ports: "5432,x"\nspec:\n  containers: [{name: a, image: b}]\n';
    await writeFile(join(dir, 'pod.yaml'), text);
    const run = await inject(['pod.yaml'], dir);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /error\[MUTUAL_K8S_INJECT_ANNOTATION_INVALID\]/);
    assert.match(
      run.stderr,
      /pod\.yaml:6:37: pod\/p: config\.mutual\.dev\/default-mode: "strict" is not a mode: use STRICT, PERMISSIVE or DISABLE/,
    );
    assert.match(run.stderr, /pod\.yaml:7:37: pod\/p: config\.mutual\.dev\/opaque-ports "x" is not a port/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('-f FILE and --filename FILE, as kubectl apply and istioctl kube-inject take manifests, print what FILE prints; -f with FILE too, or on inject serve, is a usage error', async () => {
  const positional = await inject(['inject-cronjob.in.yaml']);
  for (const args of [['-f', 'inject-cronjob.in.yaml'], ['--filename=inject-cronjob.in.yaml']]) {
    const run = await inject(args);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, positional.stdout);
    assert.equal(run.stderr, positional.stderr);
  }
  const twice = await inject(['inject-cronjob.in.yaml', '-f', 'inject-deployment.in.yaml']);
  assert.equal(twice.code, 2);
  assert.equal(twice.stdout, '');
  assert.match(
    twice.stderr,
    /give the manifests once: "inject-cronjob\.in\.yaml" and -f "inject-deployment\.in\.yaml"/,
  );
  const serve = await inject(['serve', '-f', 'inject-cronjob.in.yaml', '--cert', 'c.pem', '--key', 'k.pem']);
  assert.equal(serve.code, 2);
  assert.match(serve.stderr, /inject serve takes no manifests \(-f\)/);
});

test('Windows line endings: an injected document keeps CRLF on every line (YAML and JSON), reads as the LF one does, and injected again is the same bytes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    for (const file of ['inject-multi-doc.in.yaml', 'inject-kubectl-list.in.json']) {
      const lf = await inject([file]);
      const crlfText = (await readFile(join(GOLDEN_DIR, file), 'utf8')).replaceAll('\n', '\r\n');
      await writeFile(join(dir, file), crlfText);
      const crlf = await inject([file], dir);
      assert.equal(crlf.code, 0, crlf.stderr);
      assert.equal(crlf.stdout.match(/(?<!\r)\n/g), null, `${file}: a line ends in LF alone`);
      assert.doesNotMatch(crlf.stdout, /\r\r/);
      assert.equal(crlf.stdout.replaceAll('\r\n', '\n'), lf.stdout);
      await writeFile(join(dir, `again-${file}`), crlf.stdout);
      const again = await inject([`again-${file}`], dir);
      assert.equal(again.stdout, crlf.stdout);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a Namespace annotated mutual.dev/inject: enabled (the Linkerd habit) but not labelled gets a note that the webhook reads the label, one opted in under Pod Security baseline or restricted a note that its injected pods will be refused; printed unchanged', async () => {
  const annotated =
    'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    mutual.dev/inject: enabled\n';
  const labelled =
    'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    mutual.dev/inject: enabled\n';
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(join(dir, 'annotated.yaml'), annotated);
    const run = await inject(['annotated.yaml'], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, annotated);
    assert.match(
      run.stderr,
      /^namespace\/shop \(annotated\.yaml:6\): note: the annotation mutual\.dev\/inject: enabled does nothing on a Namespace; the webhook selects namespaces by the label mutual\.dev\/inject=enabled/m,
    );
    await writeFile(join(dir, 'labelled.yaml'), labelled);
    const quiet = await inject(['labelled.yaml'], dir);
    assert.equal(quiet.stdout, labelled);
    assert.doesNotMatch(quiet.stderr, /note:/);
    // Pod Security baseline (and restricted) refuse NET_ADMIN and NET_RAW: every injected pod.
    for (const level of ['baseline', 'restricted']) {
      const enforced = `${labelled}    pod-security.kubernetes.io/enforce: ${level}\n`;
      await writeFile(join(dir, 'enforced.yaml'), enforced);
      const refused = await inject(['enforced.yaml'], dir);
      assert.equal(refused.stdout, enforced);
      assert.match(
        refused.stderr,
        new RegExp(
          `^namespace/shop \\(enforced\\.yaml:7\\): note: pod-security\\.kubernetes\\.io/enforce: ${level} refuses mutual-init's NET_ADMIN and NET_RAW capabilities.*needs pod-security\\.kubernetes\\.io/enforce: privileged$`,
          'm',
        ),
      );
    }
    const privileged = `${labelled}    pod-security.kubernetes.io/enforce: privileged\n`;
    await writeFile(join(dir, 'privileged.yaml'), privileged);
    assert.doesNotMatch((await inject(['privileged.yaml'], dir)).stderr, /note:/);
    // Opted into Istio or Linkerd as well (a migration half done): a note naming the other opt-in.
    for (const [extra, line, said] of [
      [
        '  labels:\n    istio-injection: enabled\n',
        7,
        'label istio-injection: enabled opts its pods into Istio too',
      ],
      ['  labels:\n    istio.io/rev: canary\n', 7, 'label istio.io/rev: canary opts its pods into Istio too'],
      [
        '  annotations:\n    linkerd.io/inject: enabled\n',
        8,
        'annotation linkerd.io/inject: enabled opts its pods into Linkerd too',
      ],
    ] as const) {
      const both = extra.startsWith('  labels')
        ? `${labelled}${extra.replace('  labels:\n', '')}`
        : `${labelled}${extra}`;
      await writeFile(join(dir, 'both.yaml'), both);
      const run = await inject(['both.yaml'], dir);
      assert.equal(run.stdout, both);
      assert.match(
        run.stderr,
        new RegExp(
          `^namespace/shop \\(both\\.yaml:${line}\\): note: ${said}: both injectors act on each new pod.*remove it to mesh the namespace with Mutual$`,
          'm',
        ),
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("deep nesting: a pod nested more than 100 levels (the webhook's limit) or too deep to parse is MUTUAL_K8S_INJECT_YAML_INVALID at file:line, never an internal stack overflow; nothing printed", async () => {
  const pod = (levels: number) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec:\n  containers: [{name: c, image: c}]\n  affinity: ${'{a: '.repeat(levels)}1${'}'.repeat(levels)}\n`;
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    const cases = [
      { levels: 20, pattern: /: injected$/m, code: 0 },
      {
        levels: 150,
        pattern: /deep\.yaml:1:1: pod\/deep: nested more than 100 levels deep, which no pod is/,
        code: 1,
      },
      // Deep enough to overflow the printer, not yet the parser: MUTUAL_INTERNAL before.
      { levels: 700, pattern: /deep\.yaml:1:1: pod\/deep: nested more than 100 levels deep/, code: 1 },
      { levels: 5000, pattern: /deep\.yaml:6:\d+: nested too deeply to read/, code: 1 },
    ];
    for (const c of cases) {
      await writeFile(join(dir, 'deep.yaml'), pod(c.levels));
      const run = await inject(['deep.yaml'], dir);
      assert.equal(run.code, c.code, `${c.levels}: ${run.stderr}`);
      assert.match(run.stderr, c.pattern);
      if (c.code !== 0) {
        assert.equal(run.stdout, '');
        assert.match(run.stderr, /MUTUAL_K8S_INJECT_YAML_INVALID/);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad flags and a missing file are usage errors naming the flag; a missing file names the path', async () => {
  const flags = await inject([
    'inject-deployment.in.yaml',
    '--default-mode',
    'strict',
    '--proxy-cpu-request',
    'lots',
  ]);
  assert.equal(flags.code, 2);
  assert.match(flags.stderr, /--default-mode "strict" is not a mode/);
  assert.match(flags.stderr, /--proxy-cpu-request "lots" is not a Kubernetes quantity/);
  const none = await inject([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /give a manifest file, or -/);
  const missing = await inject(['no-such.yaml']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /MUTUAL_IO_READ_FAILED.*no-such\.yaml/);
  const noAnchors = await inject(['inject-deployment.in.yaml'], GOLDEN_DIR, { withAnchors: false });
  assert.equal(noAnchors.code, 2);
  assert.equal(noAnchors.stdout, '');
  assert.match(
    noAnchors.stderr,
    /give --trust-anchors-file FILE, the mesh's trust anchors: kubectl -n mutual-system get configmap mutual-trust-anchors/,
  );
  // Not roots (a pod manifest), then a file that is not there: each named, with the anchors code.
  for (const file of ['inject-deployment.in.yaml', 'no-such-anchors.pem']) {
    const bad = await inject(['inject-deployment.in.yaml', '--trust-anchors-file', file], GOLDEN_DIR, {
      withAnchors: false,
    });
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(
      bad.stderr,
      new RegExp(`error\\[MUTUAL_K8S_TRUST_ANCHORS_INVALID\\].*${file.replace('.', '\\.')}`),
    );
  }
});

test('findPodTemplates knows every workload kind and Lists', () => {
  const kinds = [
    'Pod',
    'Deployment',
    'StatefulSet',
    'DaemonSet',
    'ReplicaSet',
    'ReplicationController',
    'Job',
    'CronJob',
  ];
  for (const kind of kinds) {
    const template = { spec: { containers: [] } };
    const object =
      kind === 'Pod'
        ? { kind, metadata: { name: 'x' }, ...template }
        : kind === 'CronJob'
          ? { kind, metadata: { name: 'x' }, spec: { jobTemplate: { spec: { template } } } }
          : { kind, metadata: { name: 'x' }, spec: { template } };
    assert.equal(findPodTemplates(object).length, 1, kind);
  }
  assert.deepEqual(findPodTemplates({ kind: 'Service', spec: {} }), []);
  assert.deepEqual(
    findPodTemplates({
      kind: 'List',
      items: [{ kind: 'Service' }, { kind: 'Job', metadata: { name: 'j' }, spec: { template: {} } }],
    }),
    [{ path: ['items', 1, 'spec', 'template'], name: 'job/j' }],
  );
});

test('a file that holds no objects at all (a JPEG, a line of text): MUTUAL_K8S_INJECT_YAML_INVALID naming it, nothing printed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-'));
  try {
    await writeFile(
      join(dir, 'photo.jpg'),
      Buffer.from('ffd8ffe000104a46494600010100000100010000ffdb', 'hex'),
    );
    await writeFile(
      join(dir, 'notes.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\njust some words\n',
    );
    for (const [name, line] of [
      ['photo.jpg', 1],
      ['notes.yaml', 5],
    ] as const) {
      const run = await inject([name], dir);
      assert.equal(run.code, 1, name);
      assert.equal(run.stdout, '', name);
      assert.match(
        run.stderr,
        new RegExp(
          `^error\\[MUTUAL_K8S_INJECT_YAML_INVALID\\]: ${name.replace('.', '\\.')} is not Kubernetes manifests:\\n {2}${name.replace('.', '\\.')}:${line}:1: a plain value, not an object with apiVersion and kind`,
        ),
        name,
      );
    }
    // An empty file, or one of comments only, is no mistake.
    await writeFile(join(dir, 'empty.yaml'), '# nothing yet\n');
    const empty = await inject(['empty.yaml'], dir);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stderr, /empty\.yaml: no pods or workloads found/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('anchors of another trust domain than --trust-domain: refused before any output, naming both and the flag to fix', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-inject-td-'));
  try {
    const created = await runMutual([
      'ca',
      'create',
      '--trust-domain',
      'example.org',
      '--out',
      join(dir, 'ca'),
    ]);
    assert.equal(created.code, 0, created.stderr);
    await writeFile(
      join(dir, 'pod.yaml'),
      'apiVersion: v1\nkind: Pod\nmetadata: { name: web, namespace: demo }\nspec:\n  containers: [{ name: web, image: nginx }]\n',
    );
    const anchors = ['--trust-anchors-file', join(dir, 'ca', 'bundle.pem')];
    const wrong = await inject(['pod.yaml', ...anchors], dir, { withAnchors: false });
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stdout, '');
    assert.match(
      wrong.stderr,
      /MUTUAL_K8S_TRUST_ANCHORS_INVALID\]: the trust anchors in \S+bundle\.pem are for example\.org, not for the trust domain cluster\.local: .*give --trust-domain example\.org/,
    );
    const right = await inject(['pod.yaml', ...anchors, '--trust-domain', 'example.org'], dir, {
      withAnchors: false,
    });
    assert.equal(right.code, 0, right.stderr);
    assert.match(right.stdout, /- spiffe:\/\/example\.org\/ns\/\$\(MUTUAL_POD_NAMESPACE\)\/sa\//);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
