// The policy validator (POST /validate on the injector's webhook server) over real HTTPS, the
// client verifying the Service DNS name as the API server does, with admission.k8s.io/v1
// AdmissionReviews shaped as the API server sends them for security.mutual.dev policies: a policy
// the destination service would skip is refused with its field path, the problem and the fix;
// the checks' warnings come back as admission warnings; DELETE is always allowed; hostile input
// gets an answer, never a crash; every decision is counted and logged.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { convertObject, POLICY_COLLECTIONS, type PolicyCollection } from '../../src/destination/index.ts';
import {
  CONTROL_PLANE,
  DEFAULT_INJECT_OPTIONS,
  type InjectorWebhook,
  MAX_ADMISSION_REVIEW_BYTES,
  startInjectorWebhook,
} from '../../src/k8s/index.ts';
import { generateKeyPair, issueSvid, privateKeyToPem } from '../../src/pki/index.ts';
import { createTestPki, metricValue, type TestPki } from '../../src/testing/mesh-pki.ts';

const SERVICE_NAME = 'mutual-injector.mutual-system.svc';
const VALIDATE = CONTROL_PLANE.injector.validatePath;

let dir: string;
let pki: TestPki;
let webhook: InjectorWebhook;
const logLines: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mutual-webhook-validate-'));
  pki = await createTestPki(join(dir, 'pki'));
  const keys = await generateKeyPair();
  const svid = await issueSvid(pki.issuer, {
    spiffeId: 'spiffe://cluster.local/ns/mutual-system/sa/injector',
    publicKey: keys.publicKey,
    clock: systemClock,
    dnsNames: [SERVICE_NAME],
  });
  await mkdir(join(dir, 'tls'));
  await writeFile(join(dir, 'tls', 'tls.crt'), svid.chainPem);
  await writeFile(join(dir, 'tls', 'tls.key'), privateKeyToPem(keys.privateKey));
  await writeFile(join(dir, 'anchors.pem'), pki.anchor.certificatePem);
  webhook = await startInjectorWebhook({
    listen: { host: '127.0.0.1', port: 0 },
    adminListen: { host: '127.0.0.1', port: 0 },
    tls: { certFile: join(dir, 'tls', 'tls.crt'), keyFile: join(dir, 'tls', 'tls.key') },
    trustAnchorsFile: join(dir, 'anchors.pem'),
    inject: DEFAULT_INJECT_OPTIONS,
    log: (line) => logLines.push(line),
  });
});

after(async () => {
  webhook?.destroy();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
  json: Record<string, unknown>;
}

/** One request on a fresh TLS connection, verifying the server as the API server would (CA + DNS name). */
function post(body: string | Buffer, options: { method?: string; path?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(options.path ?? VALIDATE, webhook.url),
      {
        method: options.method ?? 'POST',
        ca: pki.anchor.certificatePem,
        servername: SERVICE_NAME,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: response.statusCode ?? 0, body: text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

type Kind = 'AuthorizationPolicy' | 'PeerAuthentication';

/** A policy as the API server holds it: server metadata and kubectl's last-applied annotation included. */
function policy(kind: Kind, name: string, spec: unknown, metadata: Record<string, unknown> = {}) {
  const object = { apiVersion: 'security.mutual.dev/v1', kind, metadata: { name, namespace: 'shop' }, spec };
  return {
    ...object,
    metadata: {
      name,
      namespace: 'shop',
      uid: '3b0c5a8e-1f2d-4c6b-9a7e-5d4c3b2a1f0e',
      resourceVersion: '4711',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(object) },
      managedFields: [
        {
          manager: 'kubectl-client-side-apply',
          operation: 'Update',
          apiVersion: 'security.mutual.dev/v1',
          fieldsType: 'FieldsV1',
          fieldsV1: { 'f:spec': { '.': {}, 'f:rules': {} } },
        },
      ],
      ...metadata,
    },
  };
}

const resourceOf = (kind: string) =>
  kind === 'PeerAuthentication' ? 'peerauthentications' : 'authorizationpolicies';

function review(
  object: unknown,
  overrides: Record<string, unknown> & { group?: string; version?: string; kindName?: string } = {},
  uid = crypto.randomUUID(),
): string {
  const { group = 'security.mutual.dev', version = 'v1', kindName, ...rest } = overrides;
  const kindOf =
    kindName ??
    (typeof object === 'object' && object !== null
      ? String((object as { kind?: unknown }).kind)
      : 'AuthorizationPolicy');
  const gvk = { group, version, kind: kindOf };
  const gvr = { group, version, resource: resourceOf(kindOf) };
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: gvk,
      resource: gvr,
      requestKind: gvk,
      requestResource: gvr,
      name: (object as { metadata?: { name?: string } } | null)?.metadata?.name,
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: {
        kind: 'CreateOptions',
        apiVersion: 'meta.k8s.io/v1',
        fieldManager: 'kubectl-client-side-apply',
      },
      ...rest,
    },
  });
}

interface Response {
  uid: string;
  allowed: boolean;
  warnings?: string[];
  status?: { code: number; message: string };
  patch?: string;
}

function responseOf(answer: Answer): Response {
  assert.equal(answer.status, 200, answer.body);
  assert.equal(answer.json.apiVersion, 'admission.k8s.io/v1');
  assert.equal(answer.json.kind, 'AdmissionReview');
  return answer.json.response as Response;
}

/** What the destination service does with the same object: served, or skipped with why. */
function destinationView(object: { apiVersion: string; kind: string }) {
  const entry = POLICY_COLLECTIONS.find(
    (candidate) => candidate.apiVersion === object.apiVersion && candidate.kind === object.kind,
  ) as PolicyCollection;
  return convertObject(entry, object as never, 'mutual-system');
}

async function metrics(): Promise<string> {
  return (await fetch(`${webhook.adminUrl}/metrics`)).text();
}

test('a valid AuthorizationPolicy and PeerAuthentication are allowed with the uid, no patch, no warnings, and the destination service serves them', async () => {
  const objects = [
    policy('AuthorizationPolicy', 'web-allow', {
      selector: { matchLabels: { app: 'web' } },
      action: 'ALLOW',
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }],
          to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }],
        },
      ],
    }),
    policy('PeerAuthentication', 'strict', {
      selector: { matchLabels: { app: 'web' } },
      mtls: { mode: 'STRICT' },
      portLevelMtls: { '8080': { mode: 'PERMISSIVE' } },
    }),
  ];
  for (const object of objects) {
    const uid = crypto.randomUUID();
    const response = responseOf(await post(review(object, {}, uid)));
    assert.deepEqual(response, { uid, allowed: true }, object.kind);
    assert.equal(destinationView(object).ok, true);
  }
  assert.match(logLines.join(''), /^validate: AuthorizationPolicy shop\/web-allow allowed \(valid\)$/m);
});

// Each problem the parser refuses a policy for: the webhook's refusal and the destination
// service's skip come from the same checks, so both name the same problem.
const INVALID: readonly {
  what: string;
  object: ReturnType<typeof policy>;
  code: string;
  problem: RegExp;
  fix: RegExp;
}[] = [
  {
    what: 'an empty from (a DENY that would deny nothing)',
    object: policy('AuthorizationPolicy', 'deny-empty-from', { action: 'DENY', rules: [{ from: [] }] }),
    code: 'MUTUAL_POLICY_INVALID',
    problem: /spec\.rules\[0\]\.from: `from` must not be empty/,
    fix: /Fix: List at least one source/,
  },
  {
    what: 'serviceAccounts beside principals',
    object: policy('AuthorizationPolicy', 'sa-and-principals', {
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'], serviceAccounts: ['shop/web'] } }],
        },
      ],
    }),
    code: 'MUTUAL_POLICY_INVALID',
    problem:
      /spec\.rules\[0\]\.from\[0\]\.source\.serviceAccounts: serviceAccounts cannot be set with principals/,
    fix: /Fix: Put them in two entries of `from`/,
  },
  {
    what: 'a principal where a service account goes',
    object: policy('AuthorizationPolicy', 'bad-principal', {
      rules: [{ from: [{ source: { serviceAccounts: ['cluster.local/ns/shop/sa/web'] } }] }],
    }),
    code: 'MUTUAL_POLICY_INVALID',
    problem:
      /spec\.rules\[0\]\.from\[0\]\.source\.serviceAccounts\[0\]: "cluster\.local\/ns\/shop\/sa\/web" is not <namespace>\/<service-account>/,
    fix: /Fix: That is a principal: write "shop\/web" here/,
  },
  {
    what: 'a namespace-wide portLevelMtls',
    object: policy('PeerAuthentication', 'namespace-ports', {
      mtls: { mode: 'STRICT' },
      portLevelMtls: { '8080': { mode: 'DISABLE' } },
    }),
    code: 'MUTUAL_POLICY_INVALID',
    problem: /spec\.portLevelMtls: portLevelMtls needs a selector/,
    fix: /Fix: Add selector\.matchLabels/,
  },
  {
    what: 'targetRefs (Istio applies them only in waypoints and gateways)',
    object: policy('AuthorizationPolicy', 'target-refs', {
      targetRefs: [{ kind: 'Service', group: '', name: 'web' }],
      action: 'DENY',
      rules: [{}],
    }),
    code: 'MUTUAL_POLICY_UNSUPPORTED',
    problem: /spec\.targetRefs\[0\]: a policy attached to Service "web" is not supported/,
    fix: /Fix: Select the pods behind the Service instead/,
  },
  {
    what: 'action CUSTOM',
    object: policy('AuthorizationPolicy', 'custom', {
      action: 'CUSTOM',
      provider: { name: 'ext' },
      rules: [{}],
    }),
    code: 'MUTUAL_POLICY_UNSUPPORTED',
    problem: /spec\.action: action CUSTOM \(an external authorizer\) is not supported/,
    fix: /Fix: Use ALLOW, DENY or AUDIT rules instead/,
  },
];

for (const { what, object, code, problem, fix } of INVALID) {
  test(`refused with the field path, the problem and the fix: ${what}`, async () => {
    const uid = crypto.randomUUID();
    const response = responseOf(await post(review(object, {}, uid)));
    assert.equal(response.uid, uid);
    assert.equal(response.allowed, false);
    assert.equal(response.status?.code, 400);
    const message = response.status?.message ?? '';
    // CUSTOM is valid in Istio: the destination service enforces a stricter stand-in (a DENY of
    // its rules) rather than skipping it, which would drop what the authorizer would refuse. An
    // invalid ALLOW allows nothing in its place: skipped, it could leave its workloads open.
    const isStandIn = what === 'action CUSTOM';
    const isInvalidAllow =
      object.kind === 'AuthorizationPolicy' &&
      !isStandIn &&
      code === 'MUTUAL_POLICY_INVALID' &&
      ((object.spec as { action?: string }).action ?? 'ALLOW') === 'ALLOW';
    assert.ok(
      message.startsWith(
        isStandIn
          ? `${object.kind} shop/${object.metadata.name} is using what Mutual cannot enforce, so the destination service would enforce a stricter stand-in in its place `
          : isInvalidAllow
            ? `${object.kind} shop/${object.metadata.name} is invalid, so the destination service would enforce it as an ALLOW of nothing (the workloads it selects keep only what their other ALLOW policies allow): `
            : `${object.kind} shop/${object.metadata.name} is invalid, so the destination service would skip it and it would not apply: `,
      ),
      message,
    );
    assert.match(message, problem);
    assert.match(message, fix);
    assert.match(message, new RegExp(`\\[${code}\\]$`));
    // No file, no line: the pretty-printed copy's positions mean nothing to whoever applied it.
    assert.doesNotMatch(message, /:\d+:\d+/);
    const skipped = destinationView(object);
    assert.equal(
      skipped.ok,
      isStandIn || isInvalidAllow,
      'the destination service skips it too, or serves its stand-in',
    );
    if (!skipped.ok) assert.match(skipped.skipped.message, problem);
    else assert.match(skipped.notice?.message ?? '', problem);
    // A dry run (kubectl apply --dry-run=server) is answered the same.
    const dry = responseOf(await post(review(object, { dryRun: true })));
    assert.equal(dry.allowed, false);
    assert.equal(dry.status?.message, message);
    assert.ok(
      logLines.some((line) =>
        line.startsWith(`validate: ${object.kind} shop/${object.metadata.name} refused [${code}]: `),
      ),
      logLines.join(''),
    );
  });
}

test('security.istio.io policies are checked the same when a configuration sends them (mutual install --validate-istio-policies)', async () => {
  const istio = { ...INVALID[0]!.object, apiVersion: 'security.istio.io/v1beta1' };
  const response = responseOf(await post(review(istio, { group: 'security.istio.io', version: 'v1beta1' })));
  assert.equal(response.allowed, false);
  assert.match(response.status?.message ?? '', /spec\.rules\[0\]\.from: `from` must not be empty/);
  const valid = policy('AuthorizationPolicy', 'istio-ok', {
    action: 'DENY',
    rules: [{ from: [{ source: { namespaces: ['evil'] } }] }],
  });
  const ok = responseOf(
    await post(review({ ...valid, apiVersion: 'security.istio.io/v1' }, { group: 'security.istio.io' })),
  );
  assert.equal(ok.allowed, true);
});

test('every problem is named, up to ten, then how many more', async () => {
  const object = policy('AuthorizationPolicy', 'many-problems', {
    rules: Array.from({ length: 25 }, () => ({ from: [] })),
  });
  const response = responseOf(await post(review(object)));
  const message = response.status?.message ?? '';
  assert.match(message, /spec\.rules\[0\]\.from: /);
  assert.match(message, /spec\.rules\[9\]\.from: /);
  assert.doesNotMatch(message, /spec\.rules\[10\]\.from: /);
  assert.match(message, /; and 15 more problems: `mutual policy check` on the file lists them all$/);
});

test('what the checks warn about comes back as admission warnings, with the field path and the fix, and the policy is allowed', async () => {
  const object = policy('AuthorizationPolicy', 'scheme-principal', {
    selector: { matchLabels: { app: 'web' } },
    rules: [{ from: [{ source: { principals: ['spiffe://cluster.local/ns/shop/sa/web'] } }] }],
  });
  const response = responseOf(await post(review(object)));
  assert.equal(response.allowed, true);
  assert.equal(response.status, undefined);
  assert.deepEqual(response.warnings, [
    'AuthorizationPolicy shop/scheme-principal: spec.rules[0].from[0].source.principals[0]: principal "spiffe://cluster.local/ns/shop/sa/web" starts with spiffe:// and will never match. Fix: Write principals as Istio does, without the scheme: "cluster.local/ns/shop/sa/web" (principal-not-istio-form)',
  ]);
  // The deny-all idiom: allowed, and said what it does.
  const denyAll = responseOf(await post(review(policy('AuthorizationPolicy', 'deny-all', {}))));
  assert.equal(denyAll.allowed, true);
  assert.match(
    denyAll.warnings?.[0] ?? '',
    /^AuthorizationPolicy shop\/deny-all: spec: an ALLOW policy without rules allows nothing/,
  );
  // A refusal carries the warnings too, and thousands of them are cut to ten and a count.
  const noisy = policy('AuthorizationPolicy', 'noisy', {
    rules: [
      {
        from: Array.from({ length: 3000 }, (_, i) => ({
          source: { principals: [`spiffe://cluster.local/ns/shop/sa/w${i}`] },
        })),
      },
      { from: [] },
    ],
  });
  const refused = responseOf(await post(review(noisy)));
  assert.equal(refused.allowed, false);
  assert.equal(refused.warnings?.length, 11);
  assert.equal(
    refused.warnings?.at(-1),
    'AuthorizationPolicy shop/noisy: 2990 more warnings: `mutual policy check` on the file lists them all',
  );
  assert.match(
    logLines.join(''),
    /^validate: AuthorizationPolicy shop\/scheme-principal allowed \(warnings, 1 warning\)$/m,
  );
});

test('DELETE is always allowed, an invalid policy too; UPDATE is checked like CREATE', async () => {
  const invalid = INVALID[0]!.object;
  const valid = policy('AuthorizationPolicy', 'deny-empty-from', {
    action: 'DENY',
    rules: [{ from: [{ source: { namespaces: ['evil'] } }] }],
  });
  const deleted = responseOf(
    await post(review(null, { operation: 'DELETE', oldObject: invalid, kindName: 'AuthorizationPolicy' })),
  );
  assert.equal(deleted.allowed, true);
  assert.equal(deleted.warnings, undefined);
  // A valid policy changed into one the destination service would skip: refused, the old one stays.
  const update = responseOf(await post(review(invalid, { operation: 'UPDATE', oldObject: valid })));
  assert.equal(update.allowed, false);
  assert.match(update.status?.message ?? '', /spec\.rules\[0\]\.from: `from` must not be empty/);
  // The reverse: fixed.
  const fixed = responseOf(await post(review(valid, { operation: 'UPDATE', oldObject: invalid })));
  assert.equal(fixed.allowed, true);
});

test('an UPDATE that leaves an invalid policy as it was (a label, an annotation), or removes its finalizers while it is deleted, is allowed: refusing would protect nothing', async () => {
  const invalid = INVALID[0]!.object;
  const labelled = {
    ...invalid,
    metadata: { ...invalid.metadata, labels: { team: 'a' }, resourceVersion: '4712' },
  };
  const response = responseOf(await post(review(labelled, { operation: 'UPDATE', oldObject: invalid })));
  assert.equal(response.allowed, true);
  assert.equal(response.warnings?.length, 1);
  assert.match(
    response.warnings?.[0] ?? '',
    /^AuthorizationPolicy shop\/deny-empty-from is still invalid, and the destination service skips it \(it does not apply\): spec\.rules\[0\]\.from: `from` must not be empty/,
  );
  const deleting = {
    ...invalid,
    metadata: { ...invalid.metadata, deletionTimestamp: '2026-01-02T00:00:00Z', finalizers: [] },
    spec: { action: 'DENY', rules: [{ from: [], to: [] }] },
  };
  const finalizing = responseOf(await post(review(deleting, { operation: 'UPDATE', oldObject: invalid })));
  assert.equal(finalizing.allowed, true);
});

test('not a policy: other kinds (a misrouted Pod, an unknown kind of the group) are allowed unchecked with a warning; a review without an object is refused in the review', async () => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { containers: [] },
  };
  const podAnswer = responseOf(await post(review(pod, { group: '', version: 'v1', kindName: 'Pod' })));
  assert.equal(podAnswer.allowed, true);
  assert.equal(podAnswer.patch, undefined);
  assert.deepEqual(podAnswer.warnings, [
    'mutual-policy-validator: v1 Pod not checked: only PeerAuthentication and AuthorizationPolicy of security.mutual.dev or security.istio.io are',
  ]);
  const sidecar = responseOf(
    await post(
      review(
        { kind: 'Sidecar', metadata: { name: 's' } },
        { group: 'security.mutual.dev', kindName: 'Sidecar' },
      ),
    ),
  );
  assert.equal(sidecar.allowed, true);
  assert.match(sidecar.warnings?.[0] ?? '', /security\.mutual\.dev\/v1 Sidecar not checked/);
  for (const object of [null, 'a policy', 42, [1, 2]]) {
    const uid = crypto.randomUUID();
    const response = responseOf(await post(review(object, { kindName: 'AuthorizationPolicy' }, uid)));
    assert.equal(response.uid, uid);
    assert.equal(response.allowed, false, JSON.stringify(object));
    assert.equal(response.status?.code, 400);
    assert.match(
      response.status?.message ?? '',
      /the request for a CREATE has (no object|an object that is)/,
    );
  }
  // A spec of the wrong shape (what the CRD schema would have stopped): the parser says so.
  const wrongShape = responseOf(await post(review(policy('AuthorizationPolicy', 'shape', { rules: 'all' }))));
  assert.equal(wrongShape.allowed, false);
  assert.match(wrongShape.status?.message ?? '', /spec\.rules: Invalid input: expected array/);
});

test('hostile input: garbage, a wrong method or path, a deep or huge policy, control characters in a name are all answered, and the webhook keeps serving', async () => {
  const garbage = await post('{"kind": "AdmissionReview", ');
  assert.equal(garbage.status, 400);
  assert.equal((garbage.json.error as { code: string }).code, 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID');
  const wrongApi = await post(
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1beta1',
      kind: 'AdmissionReview',
      request: { uid: 'x' },
    }),
  );
  assert.equal(wrongApi.status, 400);
  assert.match(wrongApi.body, /set admissionReviewVersions: \[\\"v1\\"\]/);
  const get = await post('', { method: 'GET' });
  assert.equal(get.status, 405);
  const elsewhere = await post(review(INVALID[0]!.object), { path: '/validate/x' });
  assert.equal(elsewhere.status, 404);
  assert.match(elsewhere.body, /POST \/validate/);

  // Nested far deeper than any policy: refused in the review, without a stack overflow.
  const deepBody = review(policy('AuthorizationPolicy', 'deep', { rules: 'DEEP' })).replace(
    '"rules":"DEEP"',
    `"rules":${'['.repeat(20_000)}${']'.repeat(20_000)}`,
  );
  const deepAnswer = responseOf(await post(deepBody));
  assert.equal(deepAnswer.allowed, false);
  assert.match(deepAnswer.status?.message ?? '', /nested more than 32 levels deep, which no policy is/);

  // Bigger than etcd stores (1.5 MiB), 60 000 principals: checked whole, in well under the API server's 10 s.
  const principals = Array.from({ length: 60_000 }, (_, i) => `cluster.local/ns/shop/sa/client-${i}`);
  const huge = review(
    policy('AuthorizationPolicy', 'huge', { rules: [{ from: [{ source: { principals } }] }] }),
  );
  assert.ok(huge.length > 2 * 1024 * 1024);
  const started = performance.now();
  const hugeAnswer = responseOf(await post(huge));
  assert.equal(hugeAnswer.allowed, true);
  assert.ok(performance.now() - started < 5000, `${performance.now() - started} ms`);
  // Over the body cap: 413 without reading it all.
  const tooLarge = await post(Buffer.alloc(MAX_ADMISSION_REVIEW_BYTES + 1, 'a'));
  assert.equal(tooLarge.status, 413);

  // A name with a newline and a terminal escape cannot forge a log line or the message's text.
  const forged = 'x\nvalidate: AuthorizationPolicy kube-system/all allowed (valid)\u001b[31m';
  const hostileName = responseOf(
    await post(review({ ...policy('AuthorizationPolicy', forged, { rules: [{ from: [] }] }) })),
  );
  assert.equal(hostileName.allowed, false);
  assert.match(hostileName.status?.message ?? '', /^AuthorizationPolicy shop\/x\\u000avalidate: /);
  assert.ok(!logLines.some((line) => line.startsWith('validate: AuthorizationPolicy kube-system/all')));
  assert.ok(
    logLines.some((line) => line.includes('shop/x\\u000avalidate: AuthorizationPolicy kube-system/all')),
  );

  // Still serving.
  assert.equal(responseOf(await post(review(INVALID[0]!.object))).allowed, false);
});

test('metrics: decisions by result and reason in mutual_injector_policy_admissions_total, HTTP errors on /validate there too, none in the injector counter', async () => {
  const before = await metrics();
  const count = (text: string, labels: Record<string, string>) =>
    metricValue(text, 'mutual_injector_policy_admissions_total', labels);
  await post(review(policy('AuthorizationPolicy', 'ok', { rules: [{}] })));
  await post(review(INVALID[0]!.object));
  await post(review(INVALID[4]!.object));
  await post(
    review(null, { operation: 'DELETE', oldObject: INVALID[0]!.object, kindName: 'AuthorizationPolicy' }),
  );
  await post('not json');
  const after = await metrics();
  assert.equal(
    count(after, { result: 'allowed', reason: 'valid' }) -
      count(before, { result: 'allowed', reason: 'valid' }),
    1,
  );
  for (const reason of ['MUTUAL_POLICY_INVALID', 'MUTUAL_POLICY_UNSUPPORTED']) {
    assert.equal(
      count(after, { result: 'refused', reason }) - count(before, { result: 'refused', reason }),
      1,
      reason,
    );
  }
  assert.equal(
    count(after, { result: 'ignored', reason: 'not-create-or-update' }) -
      count(before, { result: 'ignored', reason: 'not-create-or-update' }),
    1,
  );
  const invalidReview = { result: 'error', reason: 'MUTUAL_K8S_ADMISSION_REVIEW_INVALID' };
  assert.equal(count(after, invalidReview) - count(before, invalidReview), 1);
  assert.equal(
    metricValue(after, 'mutual_injector_admissions_total', invalidReview),
    metricValue(before, 'mutual_injector_admissions_total', invalidReview),
  );
  assert.match(
    after,
    /# HELP mutual_injector_policy_admissions_total Policy AdmissionReviews answered on \/validate/,
  );
});
