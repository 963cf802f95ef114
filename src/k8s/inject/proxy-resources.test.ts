import assert from 'node:assert/strict';
import test from 'node:test';
import { ANNOTATIONS } from '../constants.ts';
import { DEFAULT_INJECT_OPTIONS, type InjectOptions, injectPod, type PodLike } from './inject-pod.ts';
import { proxyResourceFlagProblems, quantityNanos } from './proxy-resources.ts';

const OPTIONS: InjectOptions = {
  ...DEFAULT_INJECT_OPTIONS,
  trustAnchorsPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
};

interface Container {
  name: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

const pod = (annotations: Record<string, unknown>, resources?: Container['resources']): PodLike => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', annotations },
  spec: { containers: [{ name: 'web', image: 'nginx', ...(resources ? { resources } : {}) }] },
});

function problemsOf(annotations: Record<string, unknown>): string[] {
  const outcome = injectPod(pod(annotations), OPTIONS);
  return outcome.kind === 'invalid' ? outcome.problems.map((p) => `${p.annotation}: ${p.message}`) : [];
}

test('quantityNanos reads Kubernetes quantities exactly, rounding up below a nano-unit', () => {
  const table: [string, ReturnType<typeof quantityNanos>][] = [
    ['100m', 100_000_000n],
    ['0.1', 100_000_000n],
    ['.5', 500_000_000n],
    ['2', 2_000_000_000n],
    ['1Gi', 1024n ** 3n * 1_000_000_000n],
    ['1.5Gi', 1536n * 1024n ** 2n * 1_000_000_000n],
    ['2e3', 2000n * 1_000_000_000n],
    ['1E', 10n ** 27n],
    ['+1k', 1000n * 1_000_000_000n],
    ['0.1n', 1n],
    ['-0', 0n],
    ['-1', 'negative'],
    ['1e999999999', 'huge'],
    ['1Gi1', undefined],
    ['64 Mi', undefined],
    ['', undefined],
    ['１Gi', undefined],
    ['1MB', undefined],
  ];
  for (const [text, expected] of table) assert.equal(quantityNanos(text), expected, text);
});

const R = ANNOTATIONS.proxyCpuRequest;
const M = ANNOTATIONS.proxyMemoryRequest;
const CL = ANNOTATIONS.proxyCpuLimit;
const ML = ANNOTATIONS.proxyMemoryLimit;
const hostile: [string, string, string][] = [
  [M, '-1', `${M}: "-1" is negative: write e.g. 256Mi or 1Gi`],
  [R, '-100m', `${R}: "-100m" is negative: write e.g. 100m or 0.5`],
  [ML, '1Gi1', `${ML}: "1Gi1" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi`],
  [ML, '1GB', `${ML}: "1GB" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi`],
  [R, '', `${R}: "" is empty: write e.g. 100m or 0.5, or leave it out for the default (100m)`],
  [ML, '  ', `${ML}: "" is empty: write e.g. 256Mi or 1Gi, or leave it out for the default (1Gi)`],
  [M, '１２８Mi', `${M}: "１２８Mi" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi`],
  [M, '128Mi\u200b', `${M}: "128Mi\u200b" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi`],
  [CL, '½', `${CL}: "½" is not a Kubernetes quantity: write e.g. 100m or 0.5`],
  [
    CL,
    '500M',
    `${CL}: "500M" is more than 1024 CPUs (M is millions; millicores are a lower-case m): write e.g. 100m or 0.5`,
  ],
  [
    R,
    '9'.repeat(400),
    `${R}: "${'9'.repeat(400)}" is more than 1024 CPUs (M is millions; millicores are a lower-case m): write e.g. 100m or 0.5`,
  ],
  [
    ML,
    '99999999999Ei',
    `${ML}: "99999999999Ei" is more memory than a container can be given (2^63-1 bytes): write e.g. 256Mi or 1Gi`,
  ],
  [
    ML,
    '1e999999999',
    `${ML}: "1e999999999" is more memory than a container can be given (2^63-1 bytes): write e.g. 256Mi or 1Gi`,
  ],
  [
    M,
    '128m',
    `${M}: "128m" is not a whole number of bytes (m is thousandths; mebibytes are Mi): write e.g. 256Mi or 1Gi`,
  ],
  [CL, '0', `${CL}: "0" is no CPU at all: write e.g. 100m or 0.5`],
  [
    ML,
    '64Mi',
    `${ML}: "64Mi" is below what the proxy uses idle (about 92 MB): it would be OOM-killed; give at least 128Mi (512Mi or more for a busy proxy)`,
  ],
];
for (const [annotation, value, message] of hostile) {
  test(`annotation ${annotation}: ${JSON.stringify(value).slice(0, 40)} is refused, naming it, the value and an example`, () => {
    assert.deepEqual(problemsOf({ [annotation]: value }), [message]);
  });
}

test('a request above its limit is refused, from the side the pod annotated, naming where the other came from', () => {
  assert.deepEqual(problemsOf({ [M]: '2Gi' }), [
    `${M}: 2Gi is more than the memory limit 1Gi (the injector's default; annotate ${ML} to change it): Kubernetes refuses a request above its limit; lower the request or raise the limit`,
  ]);
  assert.deepEqual(problemsOf({ [CL]: '50m' }), [
    `${CL}: 50m is less than the CPU request 100m (the injector's default; annotate ${R} to change it): Kubernetes refuses a request above its limit; lower the request or raise the limit`,
  ]);
  assert.deepEqual(problemsOf({ [M]: '600Mi', [ML]: '512Mi' }), [
    `${M}: 600Mi is more than the memory limit 512Mi (${ML}): Kubernetes refuses a request above its limit; lower the request or raise the limit`,
  ]);
  // Equal is fine, and units compare by value: 0.5 == 500m, 1Gi == 1024Mi.
  assert.deepEqual(problemsOf({ [R]: '0.5', [CL]: '500m', [M]: '1024Mi', [ML]: '1Gi' }), []);
  assert.deepEqual(problemsOf({ [M]: '1.5Gi', [ML]: '1536Mi' }), []);
});

/** The pod's QoS class as the kubelet computes it (pkg/apis/core/helper/qos): init containers count. */
function qosClass(spec: { containers: Container[]; initContainers?: Container[] }): string {
  const all = [...spec.containers, ...(spec.initContainers ?? [])];
  const has = (c: Container) =>
    Object.keys(c.resources?.requests ?? {}).length + Object.keys(c.resources?.limits ?? {}).length > 0;
  if (!all.some(has)) return 'BestEffort';
  const isGuaranteed = all.every((c) =>
    ['cpu', 'memory'].every((name) => {
      const limit = c.resources?.limits?.[name];
      const request = c.resources?.requests?.[name] ?? limit;
      return limit !== undefined && quantityNanos(limit) === quantityNanos(request ?? '');
    }),
  );
  return isGuaranteed ? 'Guaranteed' : 'Burstable';
}

test('defaults: the proxy requests 100m and 128Mi with limits 2 and 1Gi; mutual-init requests what it is limited to', () => {
  const outcome = injectPod(pod({}), OPTIONS);
  assert.equal(outcome.kind, 'injected');
  const spec = (outcome as { pod: PodLike }).pod.spec as {
    containers: Container[];
    initContainers: Container[];
  };
  const [init, proxy] = spec.initContainers;
  assert.deepEqual(proxy?.resources, {
    requests: { cpu: '100m', memory: '128Mi' },
    limits: { cpu: '2', memory: '1Gi' },
  });
  assert.deepEqual(init?.resources, {
    requests: { cpu: '100m', memory: '128Mi' },
    limits: { cpu: '100m', memory: '128Mi' },
  });
  // An app without resources is no longer BestEffort once injected.
  assert.equal(qosClass(spec), 'Burstable');
});

test('a Guaranteed pod stays Guaranteed when its proxy is given requests equal to limits', () => {
  const app = { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '500m', memory: '256Mi' } };
  const outcome = injectPod(pod({ [R]: '200m', [CL]: '200m', [M]: '512Mi', [ML]: '512Mi' }, app), OPTIONS);
  assert.equal(outcome.kind, 'injected');
  const spec = (outcome as { pod: PodLike }).pod.spec as {
    containers: Container[];
    initContainers: Container[];
  };
  assert.equal(qosClass(spec), 'Guaranteed');
});

test('flags: each bad one named; a request above the default limit names the flag that raises it', () => {
  assert.deepEqual(proxyResourceFlagProblems({ memoryRequest: '64 MB', cpuLimit: '-2' }), [
    '--proxy-memory-request "64 MB" is not a Kubernetes quantity: write e.g. 256Mi or 1Gi',
    '--proxy-cpu-limit "-2" is negative: write e.g. 100m or 0.5',
  ]);
  assert.deepEqual(proxyResourceFlagProblems({ cpuRequest: '4' }), [
    '--proxy-cpu-request 4 is more than the CPU limit 2 (the default; give --proxy-cpu-limit to change it): Kubernetes refuses a request above its limit; lower the request or raise the limit',
  ]);
  assert.deepEqual(proxyResourceFlagProblems({ cpuRequest: '4', cpuLimit: '4' }), []);
});
