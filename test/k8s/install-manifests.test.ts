// `mutual install` output: every object valid against the official Kubernetes OpenAPI schemas,
// the shape the control plane needs (names, args, RBAC, webhook selectors), and golden files.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, visit } from 'yaml';
import { createProgram } from '../../src/cli/index.ts';
import { systemClock } from '../../src/clock.ts';
import {
  CONTROL_PLANE,
  CONTROL_PLANE_NAMESPACE,
  INJECTOR_WEBHOOK,
  ISSUER_SECRET,
  POLICY_VALIDATOR_WEBHOOK,
  TRUST_ANCHORS_CONFIG_MAP,
} from '../../src/k8s/index.ts';
import { repoRoot } from '../e2e/run-mutual.ts';
import {
  decodeBase64,
  findObject,
  maskGenerated,
  parseObjects,
  runInstall,
  validateObject,
} from './install-harness.ts';

const GOLDEN_DIR = join(repoRoot(), 'test', 'k8s', 'golden');

test('every rendered object validates against the Kubernetes OpenAPI schemas', async () => {
  const run = await runInstall([]);
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  const kinds = objects.map((object) => object.kind);
  assert.deepEqual([...new Set(kinds)].sort(), [
    'ClusterRole',
    'ClusterRoleBinding',
    'ConfigMap',
    'CustomResourceDefinition',
    'Deployment',
    'MutatingWebhookConfiguration',
    'Namespace',
    'Secret',
    'Service',
    'ServiceAccount',
    'ValidatingWebhookConfiguration',
  ]);
  for (const object of objects) validateObject(object);
  // Order matters to `kubectl apply`: the namespace first, the webhooks last (after the injector).
  assert.equal(kinds[0], 'Namespace');
  assert.deepEqual(kinds.slice(-2), ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
});

test("no YAML anchors or aliases: values that repeat (the webhooks' excluded namespaces, CRD schema parts) are written out in each place, so editing one edits only it", async () => {
  const run = await runInstall([]);
  assert.equal(run.code, 0, run.stderr);
  for (const doc of parseAllDocuments(run.stdout)) {
    visit(doc, {
      Alias(_key, node) {
        assert.fail(`alias *${node.source} in the rendered ${String(doc.get('kind'))}`);
      },
      Node(_key, node) {
        assert.equal(
          node.anchor,
          undefined,
          `anchor &${node.anchor} in the rendered ${String(doc.get('kind'))}`,
        );
      },
    });
  }
  assert.doesNotMatch(run.stdout, /: [&*]a\d+$/m);
});

test('the validator is live: a broken Deployment and a broken CRD are refused', async () => {
  const objects = parseObjects((await runInstall([])).stdout);
  const deployment = structuredClone(findObject(objects, 'Deployment', CONTROL_PLANE.identity.name));
  (deployment as any).spec.template.spec.containers[0].ports[0].containerPort = 'https';
  assert.throws(() => validateObject(deployment), /containerPort must be integer/);
  const crd = structuredClone(objects.find((object) => object.kind === 'CustomResourceDefinition')!);
  delete (crd as any).spec.names.plural;
  assert.throws(() => validateObject(crd), /plural/);
});

test('the control plane: namespace never injected, args on the shared ports, probes on admin', async () => {
  const objects = parseObjects((await runInstall([])).stdout);
  const namespace = findObject(objects, 'Namespace', CONTROL_PLANE_NAMESPACE);
  assert.equal(namespace.metadata.annotations?.['mutual.dev/inject'], 'disabled');
  for (const object of objects) {
    const isClusterScoped = [
      'Namespace',
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'MutatingWebhookConfiguration',
      'ValidatingWebhookConfiguration',
    ].includes(object.kind);
    assert.equal(
      object.metadata.namespace,
      isClusterScoped ? undefined : CONTROL_PLANE_NAMESPACE,
      object.kind,
    );
  }
  const args = (name: string) =>
    (findObject(objects, 'Deployment', name) as any).spec.template.spec.containers[0].args as string[];
  const identityArgs = args(CONTROL_PLANE.identity.name);
  assert.deepEqual(identityArgs.slice(0, 2), ['identity', 'serve']);
  assert.equal(identityArgs[identityArgs.indexOf('--token-review-url') + 1], 'in-cluster');
  assert.equal(identityArgs[identityArgs.indexOf('--listen') + 1], '0.0.0.0:8443');
  assert.equal(identityArgs[identityArgs.indexOf('--admin-listen') + 1], '0.0.0.0:9990');
  assert.deepEqual(args(CONTROL_PLANE.destination.name), [
    'destination',
    'serve',
    '--listen',
    '0.0.0.0:8086',
    '--admin-listen',
    '0.0.0.0:9996',
    '--kubernetes',
    'in-cluster',
    '--trust-domain',
    'cluster.local',
    '--identity-url',
    'https://mutual-identity.mutual-system.svc:8443',
    '--token-file',
    '/var/run/secrets/mutual.dev/serviceaccount/token',
    '--identity-bundle',
    '/var/run/mutual/identity/trust-anchors/ca-bundle.crt',
  ]);
  // The token the destination service presents to the identity service: projected, right audience.
  const destinationPod = (findObject(objects, 'Deployment', CONTROL_PLANE.destination.name) as any).spec
    .template.spec;
  const token = destinationPod.volumes.find((volume: any) => volume.projected).projected.sources[0];
  assert.equal(token.serviceAccountToken.audience, 'identity.mutual.dev');
  assert.deepEqual(args(CONTROL_PLANE.injector.name).slice(0, 4), [
    'inject',
    'serve',
    '--listen',
    '0.0.0.0:8443',
  ]);
  for (const component of Object.values(CONTROL_PLANE)) {
    const pod = (findObject(objects, 'Deployment', component.name) as any).spec.template;
    const container = pod.spec.containers[0];
    const admin = container.ports.find((port: { name: string }) => port.name === 'admin');
    assert.equal(admin.containerPort, component.adminPort, component.name);
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/live', port: 'admin' });
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/ready', port: 'admin' });
    assert.equal(pod.spec.serviceAccountName, component.serviceAccount);
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    findObject(objects, 'ServiceAccount', component.serviceAccount);
    findObject(objects, 'Service', component.name);
  }
});

test('RBAC: the identity service may create TokenReviews; destination only reads', async () => {
  const objects = parseObjects((await runInstall([])).stdout);
  const identityRole = objects.find(
    (object) => object.kind === 'ClusterRole' && object.metadata.name.startsWith(CONTROL_PLANE.identity.name),
  ) as any;
  assert.deepEqual(identityRole.rules, [
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  ]);
  const destinationRole = findObject(objects, 'ClusterRole', CONTROL_PLANE.destination.name) as any;
  const granted = destinationRole.rules.flatMap((rule: any) =>
    rule.resources.map((resource: string) => `${rule.apiGroups[0]}/${resource}`),
  );
  for (const needed of [
    '/pods',
    'discovery.k8s.io/endpointslices',
    '/services',
    'security.mutual.dev/peerauthentications',
    'security.mutual.dev/authorizationpolicies',
  ]) {
    assert.ok(granted.includes(needed), `destination may read ${needed}`);
  }
  for (const rule of destinationRole.rules) assert.deepEqual(rule.verbs, ['get', 'list', 'watch']);
  for (const binding of objects.filter((object) => object.kind === 'ClusterRoleBinding') as any[]) {
    assert.equal(binding.roleRef.name, binding.metadata.name);
    findObject(objects, 'ClusterRole', binding.roleRef.name);
    findObject(objects, 'ServiceAccount', binding.subjects[0].name);
  }
});

test('the webhooks: v1 reviews, no side effects, never mutual-system or kube-system, their CA in caBundle', async () => {
  const objects = parseObjects((await runInstall([])).stdout);
  const configuration = findObject(
    objects,
    'MutatingWebhookConfiguration',
    INJECTOR_WEBHOOK.configurationName,
  ) as any;
  assert.match(configuration.metadata.annotations['mutual.dev/failure-policy'], /^failurePolicy Ignore/);
  const byName = new Map(configuration.webhooks.map((webhook: any) => [webhook.name, webhook]));
  const namespaces = byName.get(INJECTOR_WEBHOOK.namespaceWebhookName) as any;
  const pods = byName.get(INJECTOR_WEBHOOK.podWebhookName) as any;
  assert.equal(namespaces.clientConfig.service.path, CONTROL_PLANE.injector.namespacePath);
  assert.equal(pods.clientConfig.service.path, CONTROL_PLANE.injector.path);
  // Exactly one of the two sees a pod: the namespace label is In for one, NotIn for the other.
  assert.deepEqual(namespaces.namespaceSelector.matchExpressions[0], {
    key: 'mutual.dev/inject',
    operator: 'In',
    values: ['enabled'],
  });
  assert.equal(pods.namespaceSelector.matchExpressions[0].operator, 'NotIn');
  const secret = findObject(objects, 'Secret', INJECTOR_WEBHOOK.secretName) as any;
  assert.equal(secret.type, 'kubernetes.io/tls');
  for (const webhook of [namespaces, pods]) {
    assert.deepEqual(webhook.admissionReviewVersions, ['v1']);
    assert.equal(webhook.sideEffects, 'None');
    assert.equal(webhook.failurePolicy, 'Ignore');
    assert.deepEqual(webhook.namespaceSelector.matchExpressions[1], {
      key: 'kubernetes.io/metadata.name',
      operator: 'NotIn',
      values: [CONTROL_PLANE_NAMESPACE, 'kube-system'],
    });
    assert.equal(webhook.objectSelector.matchExpressions[0].operator, 'DoesNotExist');
    assert.equal(decodeBase64(webhook.clientConfig.caBundle), decodeBase64(secret.data['ca.crt']));
  }
  const ca = new X509Certificate(decodeBase64(secret.data['ca.crt']));
  const serving = new X509Certificate(decodeBase64(secret.data['tls.crt']));
  assert.ok(
    serving.checkIssued(ca) && serving.verify(ca.publicKey),
    'serving certificate signed by the caBundle',
  );
  const serviceName = `${CONTROL_PLANE.injector.name}.${CONTROL_PLANE_NAMESPACE}.svc`;
  assert.equal(serving.checkHost(serviceName), serviceName);
  assert.equal(serving.checkHost('mutual-identity.mutual-system.svc'), undefined);
  assert.ok(serving.checkPrivateKey(createPrivateKey(decodeBase64(secret.data['tls.key']))));

  const failing = parseObjects((await runInstall(['--webhook-failure-policy', 'Fail'])).stdout);
  const failConfiguration = findObject(
    failing,
    'MutatingWebhookConfiguration',
    INJECTOR_WEBHOOK.configurationName,
  ) as any;
  assert.deepEqual(
    failConfiguration.webhooks.map((webhook: any) => webhook.failurePolicy),
    ['Fail', 'Fail'],
  );
});

test('the policy validator: CREATE and UPDATE of security.mutual.dev/v1 policies in every namespace to /validate, Fail whatever pods get, the same caBundle; Istio policies only with --validate-istio-policies', async () => {
  const validator = async (args: string[]) => {
    const run = await runInstall(args);
    assert.equal(run.code, 0, run.stderr);
    const objects = parseObjects(run.stdout);
    const configuration = findObject(
      objects,
      'ValidatingWebhookConfiguration',
      POLICY_VALIDATOR_WEBHOOK.configurationName,
    ) as any;
    validateObject(configuration);
    return { objects, configuration, stdout: run.stdout };
  };
  for (const args of [[], ['--webhook-failure-policy', 'Fail']]) {
    const { objects, configuration, stdout } = await validator(args);
    assert.match(configuration.metadata.annotations['mutual.dev/failure-policy'], /^failurePolicy Fail: /);
    // The reason is also a comment above the object, for whoever reads the YAML.
    assert.match(stdout, /# failurePolicy Fail: a policy is stored only once the injector has checked it/);
    assert.equal(configuration.webhooks.length, 1);
    const [webhook] = configuration.webhooks;
    assert.equal(webhook.name, POLICY_VALIDATOR_WEBHOOK.webhookName);
    assert.equal(webhook.failurePolicy, 'Fail');
    assert.equal(webhook.sideEffects, 'None');
    assert.deepEqual(webhook.admissionReviewVersions, ['v1']);
    assert.equal(webhook.matchPolicy, 'Equivalent');
    assert.equal(
      webhook.namespaceSelector,
      undefined,
      'every namespace: mutual-system holds the mesh-wide ones',
    );
    assert.equal(webhook.objectSelector, undefined);
    assert.deepEqual(webhook.clientConfig.service, {
      name: CONTROL_PLANE.injector.name,
      namespace: CONTROL_PLANE_NAMESPACE,
      path: CONTROL_PLANE.injector.validatePath,
      port: 443,
    });
    const secret = findObject(objects, 'Secret', INJECTOR_WEBHOOK.secretName) as any;
    assert.equal(decodeBase64(webhook.clientConfig.caBundle), decodeBase64(secret.data['ca.crt']));
    assert.deepEqual(webhook.rules, [
      {
        operations: ['CREATE', 'UPDATE'],
        apiGroups: ['security.mutual.dev'],
        apiVersions: ['v1'],
        resources: ['peerauthentications', 'authorizationpolicies'],
        scope: 'Namespaced',
      },
    ]);
    // The resources it names are the CRDs install renders.
    const crds = objects.filter((object) => object.kind === 'CustomResourceDefinition') as any[];
    assert.deepEqual(
      crds.map((crd) => `${crd.spec.group}/${crd.spec.versions[0].name}/${crd.spec.names.plural}`).sort(),
      webhook.rules[0].resources.map((plural: string) => `security.mutual.dev/v1/${plural}`).sort(),
    );
  }
  const { configuration } = await validator(['--validate-istio-policies']);
  assert.deepEqual(configuration.webhooks[0].rules[1], {
    operations: ['CREATE', 'UPDATE'],
    apiGroups: ['security.istio.io'],
    apiVersions: ['v1', 'v1beta1'],
    resources: ['peerauthentications', 'authorizationpolicies'],
    scope: 'Namespaced',
  });
});

test('the injector is told the image, trust domain, trust anchors and proxy resources it writes into pods', async () => {
  const run = await runInstall([
    '--image',
    'registry.example.com/mutual:dev',
    '--trust-domain',
    'example.org',
    '--proxy-cpu-request',
    '50m',
    '--proxy-memory-limit',
    '128Mi',
    '--proxy-default-mode',
    'STRICT',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const objects = parseObjects(run.stdout);
  const injector = (findObject(objects, 'Deployment', CONTROL_PLANE.injector.name) as any).spec.template.spec
    .containers[0];
  const flag = (name: string) =>
    injector.args.includes(name) ? injector.args[injector.args.indexOf(name) + 1] : undefined;
  assert.equal(injector.image, 'registry.example.com/mutual:dev');
  assert.equal(flag('--image'), 'registry.example.com/mutual:dev');
  assert.equal(flag('--trust-domain'), 'example.org');
  assert.equal(flag('--proxy-cpu-request'), '50m');
  assert.equal(flag('--proxy-memory-limit'), '128Mi');
  assert.equal(flag('--proxy-memory-request'), undefined, 'unset: the injector default');
  assert.equal(flag('--default-mode'), 'STRICT');
  // The anchors it copies into every proxy: the mutual-trust-anchors ConfigMap, mounted where --trust-anchors-file reads.
  const podSpec = (findObject(objects, 'Deployment', CONTROL_PLANE.injector.name) as any).spec.template.spec;
  const anchorsVolume = podSpec.volumes.find(
    (volume: any) => volume.configMap?.name === TRUST_ANCHORS_CONFIG_MAP.name,
  );
  const anchorsMount = injector.volumeMounts.find((mount: any) => mount.name === anchorsVolume?.name);
  assert.equal(flag('--trust-anchors-file'), `${anchorsMount?.mountPath}/${TRUST_ANCHORS_CONFIG_MAP.key}`);
  assert.equal(anchorsMount?.readOnly, true);
  const bad = await runInstall(['--proxy-memory-request', '64 MB']);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /^error\[MUTUAL_K8S_INSTALL_FLAG_INVALID\]: --proxy-memory-request "64 MB" is not a Kubernetes quantity/,
  );
});

test('the generated identity CA: anchors in the ConfigMap, an issuer under them in a kubernetes.io/tls Secret', async () => {
  const objects = parseObjects((await runInstall(['--trust-domain', 'example.org'])).stdout);
  const anchorsPem = (findObject(objects, 'ConfigMap', TRUST_ANCHORS_CONFIG_MAP.name) as any).data[
    TRUST_ANCHORS_CONFIG_MAP.key
  ];
  const anchor = new X509Certificate(anchorsPem);
  const secret = findObject(objects, 'Secret', ISSUER_SECRET.name) as any;
  assert.equal(secret.type, 'kubernetes.io/tls');
  const issuer = new X509Certificate(decodeBase64(secret.data[ISSUER_SECRET.certKey]));
  assert.ok(issuer.ca && issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey));
  assert.ok(issuer.checkPrivateKey(createPrivateKey(decodeBase64(secret.data[ISSUER_SECRET.keyKey]))));
  assert.match(issuer.subjectAltName ?? '', /URI:spiffe:\/\/example\.org/);
});

test('golden: default install and an external issuer with Fail, masked where generated', async () => {
  const cases: [string, string[]][] = [
    ['install-default.yaml', []],
    ['install-external-issuer-fail.yaml', externalArgs()],
  ];
  for (const [file, args] of cases) {
    const run = await runInstall(args, { cwd: join(repoRoot(), 'test', 'k8s', 'golden') });
    assert.equal(run.code, 0, run.stderr);
    const actual = maskGenerated(run.stdout);
    const path = join(GOLDEN_DIR, file);
    if (process.env.MUTUAL_UPDATE_GOLDEN === '1') await writeFile(path, actual);
    assert.equal(actual, await readFile(path, 'utf8'), `${file} differs; MUTUAL_UPDATE_GOLDEN=1 rewrites it`);
  }
});

function externalArgs(): string[] {
  return [
    '--identity-external-issuer',
    '--identity-trust-anchors-file',
    'install-external-trust-anchors.pem',
    '--webhook-failure-policy',
    'Fail',
    '--image',
    'registry.example.com:5000/mesh/mutual:dev',
    '--image-pull-policy',
    'Always',
    '--control-plane-replicas',
    '2',
    '--identity-svid-lifetime',
    '12h',
  ];
}

test('every flag the control-plane containers are given is one their command declares', async () => {
  const objects = parseObjects(
    (await runInstall(['--proxy-cpu-request', '10m', '--proxy-default-mode', 'STRICT'])).stdout,
  );
  const program = await createProgram({
    clock: systemClock,
    cwd: process.cwd(),
    isColor: false,
    write: () => {},
    writeError: () => {},
    setExitCode: () => {},
    untilShutdown: () => new Promise(() => {}),
  });
  for (const component of Object.values(CONTROL_PLANE)) {
    const args = (findObject(objects, 'Deployment', component.name) as any).spec.template.spec.containers[0]
      .args as string[];
    const [group, verb] = args;
    const command = program.commands
      .find((candidate) => candidate.name() === group)
      ?.commands.find((candidate) => candidate.name() === verb);
    assert.ok(command, `mutual ${group} ${verb} exists`);
    const declared = new Set(command.options.map((option) => option.long));
    for (const flag of args.filter((arg) => arg.startsWith('--'))) {
      assert.ok(declared.has(flag), `mutual ${group} ${verb} declares ${flag}`);
    }
  }
});
