import assert from 'node:assert/strict';
import test from 'node:test';
import { Pod } from 'kubernetes-models/v1/Pod';
import { loadProxyConfig } from '../../config/index.ts';
import { ANNOTATIONS, LABELS } from '../constants.ts';
import { DEFAULT_INJECT_OPTIONS, type InjectOptions, injectPod, type PodLike } from './inject-pod.ts';
import { readPodAnnotations } from './pod-annotations.ts';

const pod = (spec: Record<string, unknown> = {}, annotations: Record<string, unknown> = {}): PodLike => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'demo', annotations },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80 }] }], ...spec },
});

/** injectPod does not parse the anchors (its callers check them); any PEM text travels as it is. */
const ANCHORS_PEM = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
const OPTIONS: InjectOptions = { ...DEFAULT_INJECT_OPTIONS, trustAnchorsPem: ANCHORS_PEM };

function injected(input: PodLike) {
  const outcome = injectPod(input, OPTIONS);
  assert.equal(outcome.kind, 'injected', JSON.stringify(outcome));
  return (outcome as { pod: PodLike }).pod;
}

test('injection: init then native sidecar before the app init containers, volumes appended, labels and annotations; input untouched', () => {
  const input = pod({
    initContainers: [{ name: 'migrate', image: 'db' }],
    volumes: [{ name: 'data', emptyDir: {} }],
  });
  const before = structuredClone(input);
  const out = injected(input);
  assert.deepEqual(input, before, 'injectPod does not mutate its input');
  const spec = out.spec as {
    initContainers: { name: string; restartPolicy?: string }[];
    volumes: { name: string }[];
  };
  assert.deepEqual(
    spec.initContainers.map((c) => c.name),
    ['mutual-init', 'mutual-proxy', 'migrate'],
  );
  assert.equal(spec.initContainers[1]?.restartPolicy, 'Always');
  assert.equal(spec.initContainers[0]?.restartPolicy, undefined);
  assert.deepEqual(
    spec.volumes.map((v) => v.name),
    ['data', 'mutual-identity-token', 'mutual-identity', 'mutual-init-run'],
  );
  assert.equal(out.metadata?.annotations?.[ANNOTATIONS.inject], 'enabled');
  assert.ok(out.metadata?.annotations?.[ANNOTATIONS.injected]);
  assert.equal(out.metadata?.labels?.[LABELS.proxyInjected], 'true');
  new Pod(out as never).validate();
});

test('injection is idempotent: an injected pod is left as it is, reported already injected', () => {
  const once = injected(pod());
  const again = injectPod(once, OPTIONS);
  assert.deepEqual(again, { kind: 'skipped', reason: 'already-injected', message: 'already injected' });
});

const skips: { name: string; input: PodLike; reason: string }[] = [
  { name: 'annotation disabled', input: pod({}, { [ANNOTATIONS.inject]: 'disabled' }), reason: 'disabled' },
  { name: 'hostNetwork', input: pod({ hostNetwork: true }), reason: 'host-network' },
  {
    name: 'a foreign mutual-proxy container',
    input: pod({ containers: [{ name: 'mutual-proxy', image: 'x' }] }),
    reason: 'existing-proxy',
  },
  {
    name: 'an Istio sidecar',
    input: pod({ initContainers: [{ name: 'istio-init', image: 'x' }] }),
    reason: 'other-mesh',
  },
  {
    name: 'an app on the proxy admin port',
    input: pod({ containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 4191 }] }] }),
    reason: 'conflict',
  },
  {
    name: 'a volume named like ours',
    input: pod({ volumes: [{ name: 'mutual-identity', emptyDir: {} }] }),
    reason: 'conflict',
  },
  { name: 'no containers', input: pod({ containers: [] }), reason: 'no-containers' },
  // The proxy is Linux only: mutual-init would keep a pod bound for a Windows node from starting.
  { name: 'spec.os.name windows', input: pod({ os: { name: 'windows' } }), reason: 'windows' },
  {
    name: 'a Windows node selector',
    input: pod({ nodeSelector: { 'kubernetes.io/os': 'windows' } }),
    reason: 'windows',
  },
  // The proxy's uid passes the iptables rules unredirected: an app running as it would bypass the proxy.
  {
    name: "the pod runs as the proxy's uid",
    input: pod({ securityContext: { runAsUser: 2102 } }),
    reason: 'conflict',
  },
  {
    name: "an app init container runs as the proxy's uid",
    input: pod({ initContainers: [{ name: 'm', image: 'x', securityContext: { runAsUser: 2102 } }] }),
    reason: 'conflict',
  },
  // Other meshes' opt-outs are honoured; their opt-ins mean a second proxy at pod creation.
  {
    name: 'linkerd.io/inject: disabled',
    input: pod({}, { 'linkerd.io/inject': 'disabled' }),
    reason: 'disabled',
  },
  {
    name: 'annotation sidecar.istio.io/inject: "false"',
    input: pod({}, { 'sidecar.istio.io/inject': 'false' }),
    reason: 'disabled',
  },
  {
    name: 'label sidecar.istio.io/inject: "false"',
    input: { ...pod(), metadata: { name: 'web', labels: { 'sidecar.istio.io/inject': 'false' } } },
    reason: 'disabled',
  },
  {
    name: 'linkerd.io/inject: enabled',
    input: pod({}, { 'linkerd.io/inject': 'enabled' }),
    reason: 'other-mesh',
  },
  {
    name: 'label sidecar.istio.io/inject: "true"',
    input: { ...pod(), metadata: { name: 'web', labels: { 'sidecar.istio.io/inject': 'true' } } },
    reason: 'other-mesh',
  },
  // Opted out beats a bad annotation: nothing is injected, nothing to complain about.
  {
    name: 'disabled with a bad mode',
    input: pod({}, { [ANNOTATIONS.inject]: 'disabled', [ANNOTATIONS.defaultMode]: 'strict' }),
    reason: 'disabled',
  },
];
test("an app that runs as another uid than the proxy's is injected, a container's runAsUser beating the pod's", () => {
  injected(pod({ securityContext: { runAsUser: 1000, runAsNonRoot: true } }));
  injected(
    pod({
      securityContext: { runAsUser: 2102 },
      containers: [{ name: 'web', image: 'nginx', securityContext: { runAsUser: 1000 } }],
    }),
  );
  const out = injectPod(pod({ securityContext: { runAsUser: 2102 } }), OPTIONS);
  assert.match((out as { message: string }).message, /container web runs as uid 2102, the proxy's/);
});

test("another mesh's opt-out gives way to mutual.dev/inject: enabled on the same pod; its opt-in does not", () => {
  for (const annotations of [
    { 'linkerd.io/inject': 'disabled' },
    { 'sidecar.istio.io/inject': 'false' },
    { 'sidecar.istio.io/inject': 'off' },
  ]) {
    injected(pod({}, { ...annotations, [ANNOTATIONS.inject]: 'enabled' }));
  }
  const both = injectPod(
    pod({}, { 'linkerd.io/inject': 'enabled', [ANNOTATIONS.inject]: 'enabled' }),
    OPTIONS,
  );
  assert.equal((both as { reason?: string }).reason, 'other-mesh');
  assert.match((both as { message: string }).message, /linkerd\.io\/inject: enabled asks another mesh/);
  const out = injectPod(pod({}, { 'sidecar.istio.io/inject': 'false' }), OPTIONS);
  assert.match(
    (out as { message: string }).message,
    /annotation sidecar\.istio\.io\/inject: "false" opts it out of sidecars; annotate it mutual\.dev\/inject: enabled/,
  );
});

for (const s of skips) {
  test(`skipped with its reason: ${s.name}`, () => {
    const outcome = injectPod(s.input, OPTIONS);
    assert.equal(outcome.kind, 'skipped');
    assert.equal((outcome as { reason: string }).reason, s.reason);
  });
}

const badAnnotations: [string, unknown][] = [
  [ANNOTATIONS.defaultMode, 'strict'],
  [ANNOTATIONS.inject, 'yes'],
  [ANNOTATIONS.skipInboundPorts, '22,http'],
  [ANNOTATIONS.skipOutboundPorts, '70000'],
  [ANNOTATIONS.skipOutboundSubnets, '10.0.0.0/33'],
  [ANNOTATIONS.opaquePorts, '3306-3310'],
  [ANNOTATIONS.proxyCpuRequest, 'lots'],
  [ANNOTATIONS.proxyMemoryLimit, '64 Mi'],
  [ANNOTATIONS.proxyImage, 'has space'],
  [ANNOTATIONS.skipInboundPorts, 22],
  [ANNOTATIONS.rewriteAppProbes, 'no'],
];
for (const [key, value] of badAnnotations) {
  test(`invalid annotation refused, naming it: ${key}: ${JSON.stringify(value)}`, () => {
    const outcome = injectPod(pod({}, { [key]: value }), OPTIONS);
    assert.equal(outcome.kind, 'invalid');
    const problems = outcome.kind === 'invalid' ? outcome.problems : [];
    assert.deepEqual(
      problems.map((p) => p.annotation),
      [key],
    );
  });
}

test('annotations reach the init and proxy arguments; the mode annotation beats --default-mode; resources override', () => {
  const out = injected(
    pod(
      {},
      {
        [ANNOTATIONS.skipInboundPorts]: '22, 8000-8100',
        [ANNOTATIONS.skipOutboundPorts]: '3306',
        [ANNOTATIONS.skipOutboundSubnets]: '10.96.0.0/12',
        [ANNOTATIONS.opaquePorts]: '5432',
        [ANNOTATIONS.defaultMode]: 'STRICT',
        [ANNOTATIONS.proxyMemoryRequest]: '96Mi',
        [ANNOTATIONS.proxyMemoryLimit]: '256Mi',
        [ANNOTATIONS.proxyImage]: 'registry.local/mutual:dev',
      },
    ),
  );
  const [init, proxy] = (
    out.spec as { initContainers: { args: string[]; image: string; resources: unknown }[] }
  ).initContainers;
  const flag = (args: string[] | undefined, name: string) => args?.[args.indexOf(name) + 1];
  assert.equal(flag(init?.args, '--skip-inbound-ports'), '22, 8000-8100');
  assert.equal(flag(init?.args, '--skip-outbound-ports'), '3306');
  assert.equal(flag(init?.args, '--skip-outbound-subnets'), '10.96.0.0/12');
  assert.equal(flag(init?.args, '--admin-port'), '4191');
  assert.equal(flag(proxy?.args, '--opaque-ports'), '5432');
  assert.equal(flag(proxy?.args, '--mode'), 'STRICT');
  assert.equal(proxy?.image, 'registry.local/mutual:dev');
  assert.deepEqual(proxy?.resources, {
    requests: { cpu: '100m', memory: '96Mi' },
    limits: { cpu: '2', memory: '256Mi' },
  });
  const strictDefault = injectPod(pod({}, { [ANNOTATIONS.defaultMode]: 'DISABLE' }), {
    ...OPTIONS,
    defaultMode: 'STRICT',
  });
  assert.equal(strictDefault.kind, 'injected');
  const args =
    ((strictDefault as { pod: PodLike }).pod.spec as { initContainers: { args: string[] }[] })
      .initContainers[1]?.args ?? [];
  assert.equal(flag(args, '--mode'), 'DISABLE');
});

test('readPodAnnotations: no annotations is the default configuration, no problems', () => {
  assert.deepEqual(readPodAnnotations({}), {
    config: {
      skipInboundPorts: '',
      skipOutboundPorts: '',
      skipOutboundSubnets: '',
      resources: {},
      rewriteAppProbes: true,
    },
    problems: [],
  });
});

test('the proxy asks the destination service for its policies and carries the pod labels policy selectors match', () => {
  const input = pod();
  input.metadata!.labels = { app: 'web', 'app.kubernetes.io/version': 'v2', empty: '' };
  const proxy = (
    injected(input).spec as { initContainers: { args: string[]; env: { name: string; value?: string }[] }[] }
  ).initContainers[1]!;
  assert.equal(
    proxy.args[proxy.args.indexOf('--policy-url') + 1],
    'https://mutual-destination.mutual-system.svc:8086',
  );
  const labels = proxy.env.find((entry) => entry.name === 'MUTUAL_PROXY_LABEL')?.value;
  // Sorted; an empty value cannot be written as KEY=VALUE and is left out.
  assert.equal(labels, 'app=web,app.kubernetes.io/version=v2');
  const config = loadProxyConfig(
    { cert: '/c', key: '/k', bundle: '/b', policyUrl: 'https://mutual-destination.mutual-system.svc:8086' },
    { MUTUAL_PROXY_LABEL: labels },
  );
  assert.deepEqual(config.labels, { app: 'web', 'app.kubernetes.io/version': 'v2' });
  const unlabelled = (injected(pod()).spec as { initContainers: { env: { name: string }[] }[] })
    .initContainers[1]!;
  assert.ok(!unlabelled.env.some((entry) => entry.name === 'MUTUAL_PROXY_LABEL'));
});
