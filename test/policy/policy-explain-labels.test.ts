// `mutual policy explain` for a workload named by all its labels, run as the real binary: Istio's
// selectors match any label (version, tier, app.kubernetes.io/name), so `--to NS:key=value,…` takes
// them in full, `--to NS/APP` still means app=APP, `--label` adds to either, and a malformed or
// contradictory label is refused with what to write instead.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runMutual } from '../e2e/run-mutual.ts';

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: canary-from-web, namespace: demo }
spec:
  selector: { matchLabels: { version: v2 } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-bot-to-payments, namespace: demo }
spec:
  selector: { matchLabels: { app.kubernetes.io/name: payments } }
  action: DENY
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/bot"] } }] }]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: backend-strict, namespace: demo }
spec:
  selector: { matchLabels: { tier: backend } }
  mtls: { mode: STRICT }
`;

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-explain-labels-'));
  await writeFile(join(dir, 'policies.yaml'), POLICIES);
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function explain(
  target: readonly string[],
  from: readonly string[] = ['--from', 'cluster.local/ns/demo/sa/bot'],
) {
  const run = await runMutual([
    'policy',
    'explain',
    '--policy-dir',
    dir,
    ...target,
    '--port',
    '8080',
    ...from,
    '-o',
    'json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

test('selectors on version, tier and app.kubernetes.io/name match a workload named by its labels', async () => {
  const canary = await explain(['--to', 'demo:app=api,version=v2,tier=backend']);
  assert.deepEqual(canary.workload.labels, { app: 'api', version: 'v2', tier: 'backend' });
  assert.deepEqual(canary.decision, {
    allowed: false,
    policy: 'demo/canary-from-web',
    reason: 'no-allow-match',
  });
  assert.deepEqual(canary.peerAuthentication, {
    mode: 'STRICT',
    level: 'workload',
    policy: 'demo/backend-strict',
  });

  const fromWeb = await explain(
    ['--to', 'demo:app=api,version=v2'],
    ['--from', 'cluster.local/ns/demo/sa/web'],
  );
  assert.equal(fromWeb.decision.allowed, true);
  assert.equal(fromWeb.decision.policy, 'demo/canary-from-web');
  assert.equal(fromWeb.peerAuthentication.mode, 'PERMISSIVE');

  const payments = await explain(['--to', 'demo:app.kubernetes.io/name=payments']);
  assert.deepEqual(payments.decision.allowed, false);
  assert.equal(payments.decision.policy, 'demo/no-bot-to-payments');

  const plaintext = await explain(['--to', 'demo:tier=backend'], ['--plaintext']);
  assert.equal(plaintext.isRefusedByMode, true);
});

test('the old NS/APP form still means app=APP, and --label adds labels to it', async () => {
  const stable = await explain(['--to', 'demo/api']);
  assert.deepEqual(stable.workload.labels, { app: 'api' });
  assert.equal(stable.decision.allowed, true);
  assert.equal(stable.peerAuthentication.mode, 'PERMISSIVE');

  const canary = await explain(['--to', 'demo/api', '--label', 'version=v2', '--label', 'tier=backend']);
  assert.deepEqual(canary.workload.labels, { app: 'api', version: 'v2', tier: 'backend' });
  assert.equal(canary.decision.policy, 'demo/canary-from-web');
  assert.equal(canary.peerAuthentication.policy, 'demo/backend-strict');

  const byNamespace = await explain(['--namespace', 'demo', '--label', 'version=v2']);
  assert.equal(byNamespace.decision.policy, 'demo/canary-from-web');
});

test('a malformed or contradictory workload is refused, saying what to write', async () => {
  for (const [target, message] of [
    [['--to', 'demo:version'], /--to demo:version: "version" is not a label: write key=value/],
    [
      ['--to', 'demo:'],
      /--to demo:: write NS\/APP .* or NS:key=value,key=value \(e\.g\. demo:app=web,version=v2\)/,
    ],
    [['--to', 'demo/app=api,version=v2'], /write NS\/APP .* or NS:key=value,key=value/],
    [['--to', 'demo'], /--to demo: write NS\/APP/],
    [['--to', 'Demo:app=api'], /namespace "Demo" is not a Kubernetes namespace name/],
    [
      ['--to', 'demo:app=api,app=web'],
      /app=api and app=web: a workload has one value per label; give app once/,
    ],
    [
      ['--to', 'demo:version=v2', '--label', 'version=v1'],
      /--label version=v1 contradicts --to demo:version=v2 \(version=v2\)/,
    ],
    [['--to', 'demo/api', '--label', 'app=web'], /--label app=web contradicts --to demo\/api \(app=api\)/],
    [
      ['--to', 'demo/api', '--label', 'bad key=x'],
      /--label "bad key" is not a Kubernetes label key: .* \(e\.g\. version, app\.kubernetes\.io\/name\)/,
    ],
    [['--to', 'demo:version=v2/x'], /"v2\/x" \(the value of version\) is not a Kubernetes label value/],
    [
      ['--label', 'version=v2'],
      /name the target with --to NS\/APP or --to NS:key=value,key=value, or --namespace NS/,
    ],
  ] as const) {
    const run = await runMutual([
      'policy',
      'explain',
      '--policy-dir',
      dir,
      ...target,
      '--port',
      '8080',
      '--plaintext',
    ]);
    assert.equal(run.code, 2, `${target.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /error\[MUTUAL_CLI_USAGE\]/);
    assert.match(run.stderr, message, target.join(' '));
  }
});
