// A namespace opted into Mutual whose Pod Security level is baseline or restricted (the label
// `pod-security.kubernetes.io/enforce`, common on hardened clusters) refuses mutual-init's NET_ADMIN
// and NET_RAW, so the API server refuses every injected pod there: Deployments stop creating pods.
// docs/kubernetes.md ("Limits to know") says so, and `mutual inject` notes it when given the
// Namespace, but `mutual check` against such a cluster was green: no pod existed to be reported
// as missing the proxy. It now fails a check per such namespace, with the command that fixes it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fixedClock } from '../../src/clock.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';
import { NOW, namespace, renderCluster } from './check-cluster-fixture.ts';
import { type FakeCluster, startFakeCluster } from './fake-cluster.ts';

const DESCRIPTION = "injection namespaces admit mutual-init's NET_ADMIN and NET_RAW";

let cluster: FakeCluster;
let cwd: string;

before(async () => {
  cluster = await startFakeCluster();
  cwd = await mkdtemp(join(tmpdir(), 'mutual-walkthrough-psa-'));
});

after(async () => {
  await cluster?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

async function checkEntry() {
  cluster.setDate(NOW);
  const run = await runMutualInProcess(['check', '--kubeconfig', await cluster.kubeconfig(), '-o', 'json'], {
    cwd,
    clock: fixedClock(NOW),
  });
  const json = JSON.parse(run.stdout) as {
    checks: {
      description: string;
      status: string;
      severity: string;
      results: { status: string; message: string; subject?: string; details?: string[] }[];
    }[];
  };
  return { code: run.code, entry: json.checks.find((e) => e.description === DESCRIPTION) };
}

test('an injection namespace that enforces baseline or restricted fails, with the label command; privileged, warn-only and unlabelled ones pass', async () => {
  const rendered = await renderCluster();
  cluster.clear();
  cluster.put(
    ...rendered.objects,
    namespace('payments', {
      'mutual.dev/inject': 'enabled',
      'pod-security.kubernetes.io/enforce': 'restricted',
    }),
    namespace('search', { 'mutual.dev/inject': 'enabled', 'pod-security.kubernetes.io/enforce': 'baseline' }),
    namespace('batch', {
      'mutual.dev/inject': 'enabled',
      'pod-security.kubernetes.io/enforce': 'privileged',
    }),
    namespace('web', { 'mutual.dev/inject': 'enabled', 'pod-security.kubernetes.io/warn': 'restricted' }),
    // Not injected: its level is none of Mutual's business.
    namespace('locked', { 'pod-security.kubernetes.io/enforce': 'restricted' }),
  );
  const { code, entry } = await checkEntry();
  assert.equal(code, 1);
  assert.equal(entry?.status, 'fail');
  assert.equal(entry?.severity, 'error');
  assert.deepEqual(
    entry?.results.map((result) => [result.subject, result.message, result.details]),
    [
      [
        'payments',
        'pod-security.kubernetes.io/enforce: restricted refuses every injected pod',
        ['fix: kubectl label namespace payments pod-security.kubernetes.io/enforce=privileged --overwrite'],
      ],
      [
        'search',
        'pod-security.kubernetes.io/enforce: baseline refuses every injected pod',
        ['fix: kubectl label namespace search pod-security.kubernetes.io/enforce=privileged --overwrite'],
      ],
    ],
  );
});

test('with every injection namespace admitting it the check passes', async () => {
  const rendered = await renderCluster();
  cluster.clear();
  cluster.put(...rendered.objects);
  const { entry } = await checkEntry();
  assert.equal(entry?.status, 'ok');
  assert.equal(entry?.results[0]?.message, '1 namespace');
});

// A namespace half-way through a migration, labelled for Mutual and still opted into Istio or
// Linkerd: both injectors act on each pod (docs/kubernetes.md; `mutual inject` notes it on a
// Namespace), but `mutual check` said nothing. Now a warning per such namespace, with the command
// that removes the other opt-in.
test('an injection namespace still opted into Istio or Linkerd is a warning naming the opt-in and its removal', async () => {
  const rendered = await renderCluster();
  const linkerd = namespace('orders', { 'mutual.dev/inject': 'enabled' });
  cluster.clear();
  cluster.put(
    ...rendered.objects,
    namespace('reviews', { 'mutual.dev/inject': 'enabled', 'istio-injection': 'enabled' }),
    namespace('ratings', { 'mutual.dev/inject': 'enabled', 'istio.io/rev': '1-22-1' }),
    { ...linkerd, metadata: { ...linkerd.metadata, annotations: { 'linkerd.io/inject': 'enabled' } } },
    // Istio alone: none of Mutual's business.
    namespace('legacy', { 'istio-injection': 'enabled' }),
  );
  cluster.setDate(NOW);
  const run = await runMutualInProcess(['check', '--kubeconfig', await cluster.kubeconfig(), '-o', 'json'], {
    cwd,
    clock: fixedClock(NOW),
  });
  const json = JSON.parse(run.stdout) as {
    checks: {
      description: string;
      status: string;
      severity: string;
      results: { subject?: string; message: string; details?: string[] }[];
    }[];
  };
  const entry = json.checks.find(
    (e) => e.description === 'injection namespaces are not opted into Istio or Linkerd too',
  );
  assert.equal(entry?.status, 'fail');
  assert.equal(entry?.severity, 'warning');
  assert.deepEqual(
    entry?.results.map((result) => [result.subject, result.message, result.details]),
    [
      [
        'orders',
        'also opted in by annotation linkerd.io/inject: enabled (Linkerd)',
        ['fix: kubectl annotate namespace orders linkerd.io/inject-'],
      ],
      [
        'ratings',
        'also opted in by label istio.io/rev=1-22-1 (Istio)',
        ['fix: kubectl label namespace ratings istio.io/rev-'],
      ],
      [
        'reviews',
        'also opted in by label istio-injection=enabled (Istio)',
        ['fix: kubectl label namespace reviews istio-injection-'],
      ],
    ],
  );
});
