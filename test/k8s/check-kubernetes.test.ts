// `mutual check --kubeconfig` against a local HTTPS API server (fake-cluster.ts) holding what
// `mutual install` and `mutual inject` really render: a healthy cluster is green; each broken
// variant (a Deployment with nothing available, an expired issuer, a caBundle from another CA, no
// policy validator or one calling elsewhere, an uninjected pod, a pod with stale anchors, a skewed Date header) turns its own check red with
// its message. Golden files for the healthy and a broken table (test/golden/, UPDATE_GOLDEN=1).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { fixedClock } from '../../src/clock.ts';
import { findKubeconfig } from '../../src/k8s/checks/index.ts';
import { createWebhookCertificate } from '../../src/k8s/index.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { assertGolden } from '../golden/golden.ts';
import {
  injectedPods,
  NOW,
  plainPod,
  type RenderedCluster,
  renderCluster,
  uninjectedWebPod,
} from './check-cluster-fixture.ts';
import { type FakeCluster, type FakeObject, startFakeCluster } from './fake-cluster.ts';

interface CheckJson {
  success: boolean;
  errors: number;
  warnings: number;
  checks: Array<{
    category: string;
    description: string;
    severity: string;
    status: 'ok' | 'fail' | 'skip';
    fix: string;
    results: Array<{ status: string; message: string; subject?: string; details?: string[] }>;
  }>;
}

let cluster: FakeCluster;
let healthy: RenderedCluster;
let kubeconfig: string;
let cwd: string;

before(async () => {
  cluster = await startFakeCluster();
  kubeconfig = await cluster.kubeconfig();
  healthy = await renderCluster();
  cwd = await mkdtemp(join(tmpdir(), 'mutual-check-k8s-'));
});

after(async () => {
  await cluster?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

beforeEach(() => {
  cluster.clear();
  cluster.put(...healthy.objects);
  cluster.setDate(NOW);
  cluster.setVersion(undefined);
});

/** `mutual check ARGS` in-process, in a directory without a local mesh. */
function runCheck(args: readonly string[]) {
  return runMutualInProcess(['check', ...args], { cwd, clock: fixedClock(NOW) });
}

const check = (args: readonly string[] = []) => runCheck(['--kubeconfig', kubeconfig, ...args]);

async function checkJson(args: readonly string[] = []): Promise<{ code: number; json: CheckJson }> {
  const run = await check([...args, '-o', 'json']);
  return { code: run.code, json: JSON.parse(run.stdout) as CheckJson };
}

/** description → the failed results' "subject: message" lines. */
function failures(json: CheckJson): Record<string, string[]> {
  return Object.fromEntries(
    json.checks
      .filter((entry) => entry.status === 'fail')
      .map((entry) => [
        entry.description,
        entry.results
          .filter((result) => result.status === 'fail')
          .map((result) => `${result.subject ? `${result.subject}: ` : ''}${result.message}`),
      ]),
  );
}

/** Ports, generated key ids and temporary paths vary per run. */
const scrub = (text: string) =>
  text
    .replaceAll(cluster.url, 'https://127.0.0.1:<port>')
    .replace(/\b[0-9a-f]{8,}\b/g, '<id>')
    .replaceAll(cwd, '<tmp>');

const byName = (objects: readonly FakeObject[], kind: string, name: string) =>
  objects.find((object) => object.kind === kind && object.metadata.name === name)!;

test('a healthy cluster: every Kubernetes check passes, the one-machine ones are not run', async () => {
  const table = await check();
  assert.equal(table.code, 0, table.stdout);
  await assertGolden('check-kubernetes.table.golden', scrub(table.stdout));
  const { code, json } = await checkJson();
  assert.equal(code, 0);
  assert.equal(json.success, true);
  assert.deepEqual(failures(json), {});
  assert.deepEqual(
    [...new Set(json.checks.map((entry) => entry.category))],
    [
      'kubernetes api',
      'kubernetes control plane',
      'kubernetes trust anchors',
      'kubernetes issuer',
      'kubernetes webhook',
      'kubernetes policy validator',
      'kubernetes data plane',
    ],
  );
  // Nothing is skipped on a healthy cluster.
  assert.deepEqual(
    json.checks.filter((entry) => entry.status === 'skip').map((entry) => entry.description),
    [],
  );
  assert.match(
    table.stdout,
    /√ can reach the Kubernetes API server: https:\/\/127\.0\.0\.1:\d+ \(Kubernetes v1\.31\.0\)/,
  );
  assert.match(table.stdout, /√ namespaces labelled for injection: shop\n/);
  assert.match(table.stdout, /√ injected pods carry the ConfigMap's trust anchors: 3 pods/);
  assert.match(
    table.stdout,
    /√ webhook failure policy: Ignore \(while the injector is down, new pods start without a proxy\)/,
  );
  assert.match(
    table.stdout,
    /√ the policy validator webhook is configured: ValidatingWebhookConfiguration mutual-policy-validator, 1 webhook\n/,
  );
  assert.match(
    table.stdout,
    /√ the policy validator's caBundle verifies the injector's serving certificate \(policies\.validation\.mutual\.dev\)\n/,
  );
  assert.match(
    table.stdout,
    /√ policy validator failure policy: Fail \(while the injector is down, creating or changing a policy is refused; deleting one still works\)\n/,
  );
});

test('a Deployment with no replica available fails its own check, with the describe and logs commands', async () => {
  const destination = structuredClone(byName(healthy.objects, 'Deployment', 'mutual-destination')) as any;
  destination.status.availableReplicas = 0;
  destination.status.conditions[0] = {
    type: 'Available',
    status: 'False',
    reason: 'MinimumReplicasUnavailable',
    message: 'Deployment does not have minimum availability.',
  };
  cluster.put(destination);
  const { code, json } = await checkJson();
  assert.equal(code, 1);
  assert.deepEqual(failures(json), {
    'deployment mutual-destination has all replicas available': [
      'mutual-destination: 0 of 1 replicas available',
    ],
  });
  const entry = json.checks.find((e) => e.description.startsWith('deployment mutual-destination'))!;
  assert.deepEqual(entry.results[0]!.details, [
    'Available: MinimumReplicasUnavailable (Deployment does not have minimum availability.)',
  ]);
  assert.equal(
    entry.fix,
    'see why: `kubectl -n mutual-system describe deploy/mutual-destination` and its log, `kubectl -n mutual-system logs deploy/mutual-destination`',
  );
  cluster.remove(destination);
  const missing = await checkJson();
  assert.deepEqual(failures(missing.json), {
    'deployment mutual-destination has all replicas available': [
      'deployment mutual-system/mutual-destination does not exist',
    ],
  });
});

test('an expired issuer: the issuer validity check fails, the anchors stay green', async () => {
  // Rendered two days ago with a one-day issuer: the anchor is fine, the issuer expired yesterday.
  const old = await renderCluster({ atMs: NOW - 2 * 86_400_000, flags: { identityIssuerLifetime: '1d' } });
  cluster.clear();
  cluster.put(...old.objects);
  const { code, json } = await checkJson();
  assert.equal(code, 1);
  const failed = failures(json);
  // Once: the warning 'expires in 0s, less than 60d' for a certificate already expired is skipped.
  assert.deepEqual(Object.keys(failed).sort(), ['issuer is within its validity period']);
  assert.match(
    failed['issuer is within its validity period']![0]!,
    /: expired 24h 0m ago \(2029-12-31T00:00:00\.000Z\)$/,
  );
  const entry = json.checks.find((e) => e.description === 'issuer is within its validity period')!;
  assert.equal(entry.category, 'kubernetes issuer');
  assert.match(
    entry.fix,
    /kubectl -n mutual-system create secret tls mutual-identity-issuer --cert=issuer\.crt/,
  );
});

test('an issuer near its end warns, unless cert-manager owns its Secret and renews it', async () => {
  const short = await renderCluster({ flags: { identityIssuerLifetime: '30d' } });
  cluster.clear();
  cluster.put(...short.objects);
  let run = await checkJson();
  assert.deepEqual(Object.keys(failures(run.json)), ['issuer is valid for at least the warning period']);
  const secret = structuredClone(byName(short.objects, 'Secret', 'mutual-identity-issuer')) as any;
  secret.metadata.annotations = { 'cert-manager.io/certificate-name': 'mutual-identity-issuer' };
  cluster.put(secret);
  run = await checkJson(['--fail-on', 'warning']);
  assert.equal(run.code, 0);
  const entry = run.json.checks.find(
    (e) => e.description === 'issuer is valid for at least the warning period',
  )!;
  assert.equal(entry.status, 'skip');
  assert.equal(entry.results[0]!.message, 'cert-manager (Certificate mutual-identity-issuer) renews it');
});

test('an issuer Secret that does not chain to the ConfigMap, or is missing', async () => {
  const other = await renderCluster();
  cluster.put(byName(other.objects, 'Secret', 'mutual-identity-issuer'));
  const { json } = await checkJson();
  assert.deepEqual(Object.keys(failures(json)), ['issuer chains to a current trust anchor']);
  assert.match(
    failures(json)['issuer chains to a current trust anchor']![0]!,
    /^no root in ConfigMap mutual-system\/mutual-trust-anchors \(ca-bundle\.crt\) signed the issuer/,
  );
  cluster.remove(byName(other.objects, 'Secret', 'mutual-identity-issuer'));
  const missing = await checkJson();
  assert.match(
    failures(missing.json)['issuer certificate and key can be read and belong together']![0]!,
    /^Secret mutual-system\/mutual-identity-issuer does not exist/,
  );
});

test('a webhook caBundle from another CA fails the caBundle check for each webhook', async () => {
  const stranger = await createWebhookCertificate({
    dnsNames: ['mutual-injector.mutual-system.svc'],
    lifetimeMs: 86_400_000,
    clock: fixedClock(NOW),
  });
  const configuration = structuredClone(
    byName(healthy.objects, 'MutatingWebhookConfiguration', 'mutual-proxy-injector'),
  ) as any;
  for (const webhook of configuration.webhooks) {
    webhook.clientConfig.caBundle = Buffer.from(stranger.caPem).toString('base64');
  }
  cluster.put(configuration);
  const { code, json } = await checkJson();
  assert.equal(code, 1);
  const failed = failures(json);
  assert.deepEqual(Object.keys(failed), [
    "the webhook's caBundle verifies the injector's serving certificate",
  ]);
  const lines = failed["the webhook's caBundle verifies the injector's serving certificate"]!;
  assert.equal(lines.length, 2);
  assert.match(
    lines[0]!,
    /^namespaces\.proxy-injector\.mutual\.dev: its caBundle \(O=Mutual, CN=Mutual injector webhook CA [0-9a-f]+\) did not sign the serving certificate in Secret mutual-system\/mutual-injector-tls, which O=Mutual, CN=Mutual injector webhook CA [0-9a-f]+ issued$/,
  );
});

test('no policy validator: a warning that invalid policies are stored and skipped, with the install command', async () => {
  cluster.remove(byName(healthy.objects, 'ValidatingWebhookConfiguration', 'mutual-policy-validator'));
  const { code, json } = await checkJson();
  assert.equal(code, 0, 'a warning alone does not fail');
  assert.equal(json.warnings, 1);
  assert.deepEqual(failures(json), {
    'the policy validator webhook is configured': [
      'ValidatingWebhookConfiguration mutual-policy-validator does not exist',
    ],
  });
  const entry = json.checks.find((e) => e.description === 'the policy validator webhook is configured')!;
  assert.equal(entry.severity, 'warning');
  assert.match(entry.fix, /`mutual install \.\.\. \| kubectl apply -f -`/);
  // The checks that read it are skipped, not failed again as errors.
  assert.deepEqual(
    json.checks
      .filter((e) => e.category === 'kubernetes policy validator' && e.status === 'skip')
      .map((e) => e.results[0]!.message),
    Array(3).fill('ValidatingWebhookConfiguration mutual-policy-validator does not exist'),
  );
  const strict = await checkJson(['--fail-on', 'warning']);
  assert.equal(strict.code, 1);
});

test('a policy validator with a caBundle from another CA, or calling elsewhere, fails its own check', async () => {
  const stranger = await createWebhookCertificate({
    dnsNames: ['mutual-injector.mutual-system.svc'],
    lifetimeMs: 86_400_000,
    clock: fixedClock(NOW),
  });
  const validator = structuredClone(
    byName(healthy.objects, 'ValidatingWebhookConfiguration', 'mutual-policy-validator'),
  ) as any;
  validator.webhooks[0].clientConfig.caBundle = Buffer.from(stranger.caPem).toString('base64');
  cluster.put(validator);
  let { code, json } = await checkJson();
  assert.equal(code, 1);
  assert.deepEqual(Object.keys(failures(json)), [
    "the policy validator's caBundle verifies the injector's serving certificate",
  ]);
  assert.match(
    failures(json)["the policy validator's caBundle verifies the injector's serving certificate"]![0]!,
    /^policies\.validation\.mutual\.dev: its caBundle \(O=Mutual, CN=Mutual injector webhook CA [0-9a-f]+\) did not sign the serving certificate in Secret mutual-system\/mutual-injector-tls, which O=Mutual, CN=Mutual injector webhook CA [0-9a-f]+ issued$/,
  );
  // The mutating webhook's own check, reading the same Secret, stays green.
  assert.equal(
    json.checks.find(
      (e) => e.description === "the webhook's caBundle verifies the injector's serving certificate",
    )!.status,
    'ok',
  );
  const calling = structuredClone(
    byName(healthy.objects, 'ValidatingWebhookConfiguration', 'mutual-policy-validator'),
  ) as any;
  calling.webhooks[0].clientConfig.service.path = '/inject';
  calling.webhooks.push({
    ...calling.webhooks[0],
    name: 'elsewhere.validation.mutual.dev',
    clientConfig: {
      url: 'https://validator.example:8443/validate',
      caBundle: calling.webhooks[0].clientConfig.caBundle,
    },
  });
  cluster.put(calling);
  ({ code, json } = await checkJson());
  assert.equal(code, 1);
  assert.deepEqual(failures(json), {
    'the policy validator calls the injector': [
      "policies.validation.mutual.dev: calls Service mutual-system/mutual-injector:443/inject, not the injector's Service mutual-system/mutual-injector:443/validate",
      "elsewhere.validation.mutual.dev: calls URL https://validator.example:8443/validate, not the injector's Service mutual-system/mutual-injector:443/validate",
    ],
  });
});

test('a serving certificate close to its end warns; an expired one fails', async () => {
  // Rendered with a 30-day webhook certificate: within the 60-day warning period.
  const soon = await renderCluster({ flags: { webhookCertificateLifetime: '30d' } });
  cluster.clear();
  cluster.put(...soon.objects);
  let run = await checkJson();
  assert.equal(run.code, 0, 'a warning alone does not fail');
  assert.deepEqual(Object.keys(failures(run.json)), [
    "the injector's serving certificate is valid for at least the warning period",
  ]);
  run = await checkJson(['--fail-on', 'warning']);
  assert.equal(run.code, 1, '--fail-on warning fails on it');
  const expired = await renderCluster({
    atMs: NOW - 40 * 86_400_000,
    flags: { webhookCertificateLifetime: '30d' },
  });
  cluster.clear();
  cluster.put(...expired.objects);
  run = await checkJson();
  assert.equal(run.code, 1);
  assert.match(
    failures(run.json)["the injector's serving certificate is within its validity period"]![0]!,
    /^O=Mutual, CN=mutual-injector\.mutual-system\.svc: expired 10d 0h ago/,
  );
});

test('uninjected pods in an injection namespace are listed with the restart command, capped', async () => {
  const old = uninjectedWebPod();
  cluster.put(old, plainPod('default', 'not-labelled-namespace'));
  let { code, json } = await checkJson();
  assert.equal(code, 1);
  assert.deepEqual(failures(json), {
    'pods opted into injection run the proxy': ['shop/web-6c9d8e7f5-old1x: no mutual-proxy container'],
  });
  const entry = json.checks.find((e) => e.description === 'pods opted into injection run the proxy')!;
  assert.deepEqual(entry.results[0]!.details, ['fix: kubectl -n shop rollout restart deploy/web']);
  // A bare pod has no controller to re-create it; the fix says so.
  cluster.put(
    ...Array.from({ length: 12 }, (_, i) => plainPod('shop', `bare-${String(i).padStart(2, '0')}`)),
  );
  ({ json } = await checkJson());
  const lines = failures(json)['pods opted into injection run the proxy']!;
  assert.equal(lines.length, 11);
  assert.equal(lines[10], '… and 3 more pods');
  const bare = json.checks
    .find((e) => e.description === 'pods opted into injection run the proxy')!
    .results.find((r) => r.subject === 'shop/bare-00')!;
  assert.deepEqual(bare.details, [
    'fix: kubectl -n shop delete pod bare-00, then create it again (it has no controller that would)',
  ]);
});

test("pods the injector leaves out on purpose (another mesh's opt-out, Mutual's, hostNetwork, another mesh's sidecar) are not reported as missing the proxy; a plain one still is", async () => {
  const withMetadata = (name: string, change: (pod: any) => void) => {
    const pod = plainPod('shop', name) as any;
    change(pod);
    return pod as FakeObject;
  };
  cluster.put(
    withMetadata('istio-out', (pod) => {
      pod.metadata.annotations = { 'sidecar.istio.io/inject': 'false' };
    }),
    withMetadata('istio-label-out', (pod) => {
      pod.metadata.labels['sidecar.istio.io/inject'] = 'false';
    }),
    withMetadata('linkerd-out', (pod) => {
      pod.metadata.annotations = { 'linkerd.io/inject': 'disabled' };
    }),
    withMetadata('mutual-out', (pod) => {
      pod.metadata.annotations = { 'mutual.dev/inject': 'disabled' };
    }),
    withMetadata('node-agent', (pod) => {
      pod.spec.hostNetwork = true;
    }),
    withMetadata('istio-meshed', (pod) => {
      pod.spec.containers.push({ name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.22.0' });
    }),
  );
  let { code, json } = await checkJson();
  assert.equal(code, 0, JSON.stringify(failures(json)));
  cluster.put(plainPod('shop', 'plain'));
  ({ code, json } = await checkJson());
  assert.equal(code, 1);
  assert.deepEqual(failures(json), {
    'pods opted into injection run the proxy': ['shop/plain: no mutual-proxy container'],
  });
});

test('a pod injected with other anchors is stale: a warning naming the pod and the restart', async () => {
  const previous = await renderCluster();
  const [stale] = injectedPods(previous.install.identityCa.trustAnchorsPem, healthy.install, '7f6e5d4c3');
  cluster.put(stale!);
  const run = await checkJson();
  assert.equal(run.code, 0, 'stale anchors are a warning');
  assert.equal(run.json.warnings, 1);
  assert.deepEqual(failures(run.json), {
    "injected pods carry the ConfigMap's trust anchors": [
      "shop/web-7f6e5d4c3-a0q7z: its anchors are not the ConfigMap's: it lacks 1 root the ConfigMap has and still trusts 1 root the ConfigMap no longer has",
    ],
  });
  const failed = await checkJson(['--fail-on', 'warning']);
  assert.equal(failed.code, 1);
  const entry = run.json.checks.find(
    (e) => e.description === "injected pods carry the ConfigMap's trust anchors",
  )!;
  assert.deepEqual(entry.results.find((r) => r.status === 'fail')!.details, [
    'fix: kubectl -n shop rollout restart deploy/web',
  ]);
  // Mid-rotation the ConfigMap holds both roots: every pod made before lacks the new one.
  const configMap = structuredClone(byName(healthy.objects, 'ConfigMap', 'mutual-trust-anchors')) as any;
  configMap.data['ca-bundle.crt'] += previous.install.identityCa.trustAnchorsPem;
  cluster.remove(stale!);
  cluster.put(configMap);
  const rotating = await checkJson();
  assert.equal(failures(rotating.json)["injected pods carry the ConfigMap's trust anchors"]!.length, 3);
  assert.match(
    failures(rotating.json)["injected pods carry the ConfigMap's trust anchors"]![0]!,
    /: it lacks 1 root the ConfigMap has$/,
  );
});

test('a skewed API server clock fails the clock check with both times', async () => {
  cluster.setDate(NOW + 5 * 60_000);
  const table = await check();
  assert.equal(table.code, 1);
  assert.match(
    table.stdout,
    /× this machine's clock agrees with the API server's\n {4}the API server's clock is 5m 0s ahead of this machine's \(allowed: 20s\)\n {6}the API server: Tue, 01 Jan 2030 00:05:00 GMT\n {6}this machine: Tue, 01 Jan 2030 00:00:00 GMT\n/,
  );
  cluster.setDate(NOW + 10_000);
  assert.equal((await check()).code, 0, 'within --max-clock-skew');
});

test('Kubernetes older than 1.29 (no native sidecars: injected pods would hang in Init) fails its check with the fix; newer and distribution versions pass', async () => {
  cluster.setVersion('v1.28.9-eks-036c24b');
  const table = await check();
  assert.equal(table.code, 1);
  assert.match(
    table.stdout,
    /× Kubernetes is 1\.29 or newer \(native sidecars\)\n {4}Kubernetes v1\.28\.9-eks-036c24b does not run native sidecars: injected pods would never leave Init \(mutual-proxy would wait as an init container that never exits\)\n {4}why: the proxy is injected as a native sidecar .*\n {4}fix: upgrade the cluster to Kubernetes 1\.29 or newer/,
  );
  for (const version of ['v1.29.0+k3s1', 'v1.33.1-gke.1584000', 'v2.0.0']) {
    cluster.setVersion(version);
    const run = await check();
    assert.equal(run.code, 0, run.stdout);
    assert.match(
      run.stdout,
      new RegExp(
        `√ Kubernetes is 1\\.29 or newer \\(native sidecars\\): Kubernetes ${version.replaceAll('.', '\\.').replaceAll('+', '\\+')}\n`,
      ),
    );
  }
});

test('a broken cluster as a table (golden)', async () => {
  const destination = structuredClone(byName(healthy.objects, 'Deployment', 'mutual-destination')) as any;
  destination.status.availableReplicas = 0;
  destination.status.conditions[0] = {
    type: 'Available',
    status: 'False',
    reason: 'MinimumReplicasUnavailable',
    message: 'Deployment does not have minimum availability.',
  };
  const configuration = structuredClone(
    byName(healthy.objects, 'MutatingWebhookConfiguration', 'mutual-proxy-injector'),
  ) as any;
  configuration.webhooks[1].clientConfig.caBundle = Buffer.from(
    (await createWebhookCertificate({ dnsNames: ['x.svc'], lifetimeMs: 86_400_000, clock: fixedClock(NOW) }))
      .caPem,
  ).toString('base64');
  const previous = await renderCluster();
  const [stale] = injectedPods(previous.install.identityCa.trustAnchorsPem, healthy.install, '7f6e5d4c3');
  cluster.put(destination, configuration, uninjectedWebPod(), stale!);
  cluster.remove(byName(healthy.objects, 'ValidatingWebhookConfiguration', 'mutual-policy-validator'));
  cluster.setDate(NOW - 90_000);
  const table = await check();
  assert.equal(table.code, 1);
  await assertGolden('check-kubernetes-broken.table.golden', scrub(table.stdout));
});

test('an unreachable API server fails the first check and skips the rest', async () => {
  const closed = join(cwd, 'closed.kubeconfig');
  await writeFile(closed, (await readFile(kubeconfig, 'utf8')).replace(cluster.url, 'https://127.0.0.1:1'));
  const { code, json } = await checkJson(['--kubeconfig', closed]);
  assert.equal(code, 1);
  assert.deepEqual(Object.keys(failures(json)), ['can reach the Kubernetes API server']);
  assert.match(
    failures(json)['can reach the Kubernetes API server']![0]!,
    /cannot reach the Kubernetes API server at https:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/,
  );
  assert.equal(json.checks.filter((e) => e.status === 'skip').length, json.checks.length - 1);
});

test('--kubernetes in-cluster outside a pod, an unusable kubeconfig, and bad flags', async () => {
  const inCluster = await runCheck(['--kubernetes', 'in-cluster', '-o', 'json']);
  assert.equal(inCluster.code, 1);
  assert.match(
    failures(JSON.parse(inCluster.stdout))['can reach the Kubernetes API server']![0]!,
    /--kubernetes in-cluster needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT/,
  );
  const exec = join(cwd, 'exec.kubeconfig');
  await writeFile(
    exec,
    'apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: "https://10.0.0.1"}}]\nusers: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: mutual-test-no-such-auth-plugin}}}]\n',
  );
  const { code, json } = await checkJson(['--kubeconfig', exec]);
  assert.equal(code, 1);
  assert.match(
    failures(json)['can reach the Kubernetes API server']![0]!,
    /exec plugin, "mutual-test-no-such-auth-plugin", is not installed/,
  );
  // The same kubeconfig found through KUBECONFIG, not asked for: the Kubernetes checks are skipped, saying why.
  process.env.KUBECONFIG = exec;
  try {
    const implicit = await runCheck(['-o', 'json']);
    assert.equal(implicit.code, 0, implicit.stdout);
    const api = (JSON.parse(implicit.stdout) as CheckJson).checks[0]!;
    assert.equal(api.status, 'skip');
    assert.match(
      api.results[0]!.message,
      /\(KUBECONFIG\) cannot be used: .*exec plugin, "mutual-test-no-such-auth-plugin", is not installed.*; give --kubeconfig FILE/,
    );
  } finally {
    delete process.env.KUBECONFIG;
  }
  const wrong = await check(['--kubernetes', 'elsewhere']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /--kubernetes "elsewhere": the only value is in-cluster/);
  const both = await check(['--kubernetes', 'in-cluster']);
  assert.match(both.stderr, /give --kubernetes in-cluster or --kubeconfig FILE, not both/);
});

test('the kubeconfig is found like kubectl finds it', async () => {
  const home = join(cwd, 'home');
  const environment = (env: Record<string, string>) => ({ env, cwd, home });
  assert.equal(await findKubeconfig({}, environment({})), undefined, 'nothing configured: no cluster');
  await mkdir(join(home, '.kube'), { recursive: true });
  await writeFile(join(home, '.kube', 'config'), 'x');
  assert.deepEqual(await findKubeconfig({}, environment({})), {
    file: join(home, '.kube', 'config'),
    source: '~/.kube/config',
  });
  assert.deepEqual(await findKubeconfig({}, environment({ KUBECONFIG: `missing:${kubeconfig}` })), {
    file: kubeconfig,
    source: 'KUBECONFIG',
  });
  assert.deepEqual(await findKubeconfig({ kubeconfig: 'given' }, environment({ KUBECONFIG: kubeconfig })), {
    file: join(cwd, 'given'),
    source: '--kubeconfig',
  });
});
