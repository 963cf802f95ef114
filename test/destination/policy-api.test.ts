// The policy API over real mTLS, fed by the fake API server's list and watch of the policy kinds
// (through the client production uses): a namespace gets its own and mutual-system's policies; an
// invalid object is skipped, named and counted while the others apply; Istio's kinds answer 404
// (CRD absent, logged once) until they are installed, then apply, and an Istio policy with the
// name of one of ours is shadowed; ADDED / MODIFIED / DELETED wake long polls; bad requests get
// 400s. And the same API from a directory (--policy-dir), checked by src/policy's parser.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type DestinationService, POLICY_COLLECTIONS } from '../../src/destination/index.ts';
import { kubeconfigConnection } from '../../src/k8s/kube-client/index.ts';
import { parsePolicyText } from '../../src/policy/index.ts';
import { createTestPki, metricValue, type WorkloadFiles, waitUntil } from '../../src/testing/mesh-pki.ts';
import { get, startService } from './destination-fixture.ts';
import { type FakeKubeApi, startFakeKubeApi } from './fake-kube-api.ts';
import { authorizationPolicy, policyPath } from './policy-objects.ts';

const path = policyPath;
const MUTUAL_AP = path('security.mutual.dev/v1', 'AuthorizationPolicy');
const MUTUAL_PA = path('security.mutual.dev/v1', 'PeerAuthentication');
const ISTIO = POLICY_COLLECTIONS.filter((entry) => entry.apiVersion.startsWith('security.istio.io/'));
const ISTIO_AP = path('security.istio.io/v1', 'AuthorizationPolicy');

const ALLOW_WEB = {
  selector: { matchLabels: { app: 'emoji' } },
  action: 'ALLOW',
  rules: [{ from: [{ source: { principals: ['cluster.local/ns/demo/sa/web'] } }] }],
};

let dir: string;
let api: FakeKubeApi;
let service: DestinationService & { logs: string[] };
let web: WorkloadFiles;
let caFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-policy-api-'));
  const pki = await createTestPki(join(dir, 'pki'));
  caFile = pki.bundleFile;
  web = await pki.workload('web');
  const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
  api = await startFakeKubeApi();
  for (const entry of ISTIO) api.setAbsent(entry.path, true);
  api.add(MUTUAL_AP, authorizationPolicy('demo', 'allow-web', ALLOW_WEB));
  api.add(MUTUAL_AP, authorizationPolicy('other', 'allow-all', { rules: [{}] }));
  // A typo: Mutual refuses unknown fields rather than ignoring them (that would widen access).
  api.add(
    MUTUAL_AP,
    authorizationPolicy('demo', 'typo', {
      action: 'DENY',
      rules: [{ from: [{ source: { principles: ['x'] } }] }],
    }),
  );
  api.add(MUTUAL_PA, {
    metadata: { name: 'mesh', namespace: 'mutual-system', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: { mtls: { mode: 'STRICT' } },
  });
  service = await startService(own, { kubernetes: await kubeconfigConnection(await api.kubeconfig()) });
  await waitUntil(async () => (await fetch(`${service.adminUrl}/ready`)).ok, 'the service to be ready');
});

after(async () => {
  await service?.close();
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ask = (query: string) => get(`${service.apiUrl}/v1/policies?${query}`, { client: web, caFile });
const ids = (body: any) =>
  body.policies.map((policy: any) => `${policy.kind} ${policy.metadata.namespace}/${policy.metadata.name}`);

test("a namespace's policies and the root namespace's; the invalid one skipped, named and counted", async () => {
  const answer = await ask('namespace=demo');
  assert.equal(answer.status, 200);
  assert.equal(answer.body.namespace, 'demo');
  assert.equal(answer.body.rootNamespace, 'mutual-system');
  assert.match(answer.body.version, /^[0-9a-f]{16}$/);
  assert.deepEqual(ids(answer.body), [
    'AuthorizationPolicy demo/allow-web',
    'PeerAuthentication mutual-system/mesh',
  ]);
  // What proxies get is the policy and nothing the API server added.
  const allowWeb = answer.body.policies[0];
  assert.deepEqual(allowWeb, {
    apiVersion: 'security.mutual.dev/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'allow-web', namespace: 'demo', creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: ALLOW_WEB,
  });
  assert.equal(parsePolicyText(JSON.stringify(allowWeb), 'wire').diagnostics.length, 0);
  assert.equal(answer.body.skipped.length, 1);
  assert.equal(answer.body.skipped[0].id, 'demo/typo');
  assert.equal(answer.body.skipped[0].reason, 'invalid');
  assert.match(answer.body.skipped[0].message, /unknown field "principles".*principals/);
  assert.ok(
    service.logs.some((line) => line.includes('policy object skipped') && line.includes('demo/typo')),
  );
  const metrics = await (await fetch(`${service.adminUrl}/metrics`)).text();
  assert.equal(metricValue(metrics, 'mutual_destination_policies_skipped', { reason: 'invalid' }), 1);
  assert.equal(metricValue(metrics, 'mutual_destination_policies', { kind: 'AuthorizationPolicy' }), 2);

  const other = await ask('namespace=other');
  assert.deepEqual(ids(other.body), [
    'AuthorizationPolicy other/allow-all',
    'PeerAuthentication mutual-system/mesh',
  ]);
  assert.deepEqual(other.body.skipped, []);
  const empty = await ask('namespace=nothing-here');
  assert.deepEqual(ids(empty.body), ['PeerAuthentication mutual-system/mesh']);
});

test("Istio's kinds: 404 while the CRD is absent (logged once), then listed, watched and shadowed by ours", async () => {
  // The informers keep asking; the log says so once per resource.
  await waitUntil(
    async () => api.requests.filter((request) => request.path === ISTIO_AP).length >= 3,
    'repeated lists of the absent Istio resource',
  );
  const absentLines = service.logs.filter(
    (line) => line.includes('CRD not installed') && line.includes(ISTIO_AP),
  );
  assert.equal(absentLines.length, 1, absentLines.join('\n'));
  assert.equal((await ask('namespace=demo')).status, 200, 'absent CRDs do not hold the answer up');

  api.setAbsent(ISTIO_AP, false);
  api.add(
    ISTIO_AP,
    authorizationPolicy('demo', 'istio-deny', {
      action: 'DENY',
      rules: [{ to: [{ operation: { paths: ['/admin'] } }] }],
    }),
  );
  api.add(ISTIO_AP, authorizationPolicy('demo', 'allow-web', { rules: [{}] }));
  await waitUntil(
    async () => ids((await ask('namespace=demo')).body).includes('AuthorizationPolicy demo/istio-deny'),
    'the Istio policy to be served',
  );
  const answer = await ask('namespace=demo');
  const allowWeb = answer.body.policies.find((policy: any) => policy.metadata.name === 'allow-web');
  assert.equal(
    allowWeb.apiVersion,
    'security.mutual.dev/v1',
    'ours wins over the Istio one of the same name',
  );
  assert.deepEqual(
    answer.body.skipped.map((entry: any) => `${entry.apiVersion} ${entry.id} ${entry.reason}`),
    ['security.istio.io/v1 demo/allow-web shadowed', 'security.mutual.dev/v1 demo/typo invalid'],
  );
  assert.ok(service.logs.some((line) => line.includes('policy resource found') && line.includes(ISTIO_AP)));
  api.remove(ISTIO_AP, 'demo', 'allow-web');
  await waitUntil(
    async () => (await ask('namespace=demo')).body.skipped.length === 1,
    'the DELETED Istio policy to leave the skipped list',
  );
});

test('ADDED, MODIFIED and DELETED each wake a long poll; no change ends in 304', async () => {
  const first = await ask('namespace=demo');
  const unchanged = await ask(`namespace=demo&wait=1s&version=${first.body.version}`);
  assert.equal(unchanged.status, 304);

  const changes: [string, () => void, (body: any) => boolean][] = [
    [
      'ADDED',
      () => api.add(MUTUAL_AP, authorizationPolicy('demo', 'deny-attacker', { action: 'DENY', rules: [{}] })),
      (body) => ids(body).includes('AuthorizationPolicy demo/deny-attacker'),
    ],
    [
      'MODIFIED',
      () =>
        api.modify(MUTUAL_AP, authorizationPolicy('demo', 'deny-attacker', { action: 'AUDIT', rules: [{}] })),
      (body) => body.policies.some((policy: any) => policy.spec.action === 'AUDIT'),
    ],
    [
      'DELETED',
      () => api.remove(MUTUAL_AP, 'demo', 'deny-attacker'),
      (body) => !ids(body).includes('AuthorizationPolicy demo/deny-attacker'),
    ],
  ];
  let version = first.body.version;
  for (const [event, change, check] of changes) {
    const poll = ask(`namespace=demo&wait=20s&version=${version}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    change();
    const answer = await poll;
    assert.equal(answer.status, 200, event);
    assert.ok(check(answer.body), `${event}: ${JSON.stringify(ids(answer.body))}`);
    assert.notEqual(answer.body.version, version);
    version = answer.body.version;
  }
  // A change in another namespace does not wake demo's poll.
  const poll = ask(`namespace=demo&wait=1s&version=${version}`);
  api.add(MUTUAL_AP, authorizationPolicy('other', 'late', { rules: [{}] }));
  assert.equal((await poll).status, 304);
});

test('bad requests get a 400 naming what was wrong', async () => {
  for (const query of ['', 'namespace=', 'namespace=Bad_NS', 'namespace=demo&wait=soon']) {
    const answer = await ask(query);
    assert.equal(answer.status, 400, query);
    assert.equal(answer.body.error.code, 'MUTUAL_DESTINATION_REQUEST_INVALID');
  }
});

test('--policy-dir: a directory served the same way, each policy as src/policy reads it', async () => {
  const policyDir = join(dir, 'policies');
  const pki = await createTestPki(join(dir, 'pki-dir'));
  const own = await pki.workload('destination', { ns: 'mutual-system', sa: 'destination' });
  const client = await pki.workload('web');
  await mkdir(policyDir);
  await writeFile(
    join(policyDir, 'policies.yaml'),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: emoji, namespace: demo }
spec:
  selector: { matchLabels: { app: emoji } }
  mtls: { mode: STRICT }
  portLevelMtls: { "9090": { mode: DISABLE } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: demo }
spec:
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"] } }], to: [{ operation: { methods: [GET] } }] }]
`,
  );
  const served = await startService(own, { policyDir });
  try {
    const answer = await get(`${served.apiUrl}/v1/policies?namespace=demo`, {
      client,
      caFile: pki.bundleFile,
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(ids(answer.body), [
      'AuthorizationPolicy demo/allow-web',
      'PeerAuthentication demo/emoji',
    ]);
    for (const policy of answer.body.policies) {
      const parsed = parsePolicyText(JSON.stringify(policy), 'wire');
      assert.deepEqual(parsed.diagnostics, []);
    }
    assert.deepEqual(answer.body.policies[1].spec, {
      selector: { matchLabels: { app: 'emoji' } },
      mtls: { mode: 'STRICT' },
      portLevelMtls: { '9090': { mode: 'DISABLE' } },
    });
    // Destinations are not asked for here; /v1/destinations still answers (nobody knows them).
    const unknown = await get(`${served.apiUrl}/v1/destinations/10.0.0.1:80`, {
      client,
      caFile: pki.bundleFile,
    });
    assert.equal(unknown.body.meshed, false);
  } finally {
    await served.close();
  }
});
