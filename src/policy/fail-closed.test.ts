import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failClosedPolicy, invalidPolicyStandIn } from './fail-closed.ts';
import { parsePolicyObject } from './parse-object.ts';
import { compilePolicySet } from './policy-set.ts';
import type { AuthorizationDecision, RequestAttributes } from './types.ts';

// Istio policies (valid in Istio, taken from istio.io's examples) that use what Mutual cannot
// enforce: the stand-in must never allow a request the policy set with the original would refuse
// in Istio for a client that has no JWT and sends no X-Forwarded-For.
const WEB = 'spiffe://cluster.local/ns/foo/sa/web';
const OTHER = 'spiffe://cluster.local/ns/bar/sa/other';

function request(overrides: Partial<RequestAttributes> = {}): RequestAttributes {
  return {
    sourcePrincipal: WEB,
    sourceIp: '10.1.2.3',
    destinationPort: 8080,
    method: 'GET',
    path: '/headers',
    host: 'httpbin.foo',
    headers: {},
    ...overrides,
  };
}

/** The decision for `attributes` with `spec` (in foo, selecting app=httpbin) enforced as its stand-in. */
function decide(spec: object, attributes: RequestAttributes, others: object[] = []): AuthorizationDecision {
  const object = {
    metadata: { name: 'p', namespace: 'foo' },
    spec: { selector: { matchLabels: { app: 'httpbin' } }, ...spec },
  };
  const parsed = parsePolicyObject('security.istio.io/v1', 'AuthorizationPolicy', object, 'api');
  assert.equal(parsed.resources.length, 0, 'Mutual refuses the policy as written');
  const standIn = failClosedPolicy(parsed.document, parsed.diagnostics);
  assert.ok(standIn, 'a stand-in is made');
  const reparsed = parsePolicyObject('security.istio.io/v1', 'AuthorizationPolicy', standIn.document, 'api');
  assert.deepEqual(
    reparsed.diagnostics.filter((d) => d.severity === 'error'),
    [],
    'the stand-in is a valid policy',
  );
  const resources = [...reparsed.resources];
  for (const [index, spec] of others.entries()) {
    const other = { metadata: { name: `other-${index}`, namespace: 'foo' }, spec };
    resources.push(
      ...parsePolicyObject('security.istio.io/v1', 'AuthorizationPolicy', other, 'api').resources,
    );
  }
  return compilePolicySet(resources)
    .forWorkload({ namespace: 'foo', labels: { app: 'httpbin' } })
    .authorizeRequest(attributes);
}

const ALLOW_WEB_GET = {
  rules: [
    {
      from: [{ source: { principals: ['cluster.local/ns/foo/sa/web'] } }],
      to: [{ operation: { methods: ['GET'] } }],
    },
  ],
};

test('ALLOW requestPrincipals (require-jwt): allows nothing, rather than being dropped (which allowed all)', () => {
  const spec = {
    action: 'ALLOW',
    rules: [
      { from: [{ source: { requestPrincipals: ['testing@secure.istio.io/testing@secure.istio.io'] } }] },
    ],
  };
  assert.equal(decide(spec, request()).allowed, false);
  assert.equal(decide(spec, request({ sourcePrincipal: OTHER })).allowed, false);
  // Another ALLOW policy still allows what it allows.
  assert.equal(decide(spec, request(), [ALLOW_WEB_GET]).allowed, true);
  assert.equal(decide(spec, request({ sourcePrincipal: OTHER }), [ALLOW_WEB_GET]).allowed, false);
});

test("ALLOW: a rule with request.auth.claims is dropped, the policy's other rules still allow", () => {
  const spec = {
    rules: [
      { to: [{ operation: { paths: ['/public/*'] } }] },
      { when: [{ key: 'request.auth.claims[groups]', values: ['group1'] }] },
    ],
  };
  assert.equal(decide(spec, request({ path: '/public/x' })).allowed, true);
  assert.equal(decide(spec, request({ path: '/headers' })).allowed, false);
});

test('DENY notRequestPrincipals ["*"] (deny requests without a JWT): denies every request', () => {
  const spec = { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] };
  const decision = decide(spec, request());
  assert.equal(decision.allowed, false);
  assert.equal(decision.allowed === false && decision.policy, 'foo/p');
});

test('DENY with remoteIpBlocks, connection.sni or a path template still denies what it named, and more', () => {
  const remote = { action: 'DENY', rules: [{ from: [{ source: { remoteIpBlocks: ['1.2.3.4'] } }] }] };
  assert.equal(decide(remote, request()).allowed, false);
  const sni = {
    action: 'DENY',
    rules: [
      {
        to: [{ operation: { ports: ['8080'] } }],
        when: [{ key: 'connection.sni', values: ['evil.example'] }],
      },
    ],
  };
  assert.equal(decide(sni, request()).allowed, false);
  assert.equal(decide(sni, request({ destinationPort: 9090 })).allowed, true, 'its other fields still count');
  const template = {
    action: 'DENY',
    rules: [{ to: [{ operation: { methods: ['DELETE'], paths: ['/admin', '/users/{*}/keys'] } }] }],
  };
  assert.equal(decide(template, request({ method: 'DELETE', path: '/admin' })).allowed, false);
  assert.equal(decide(template, request({ method: 'DELETE', path: '/users/7/keys' })).allowed, false);
  assert.equal(decide(template, request({ method: 'GET', path: '/users/7/keys' })).allowed, true);
  const principalAndRemote = {
    action: 'DENY',
    rules: [
      { from: [{ source: { principals: ['cluster.local/ns/bar/sa/other'], remoteIpBlocks: ['1.2.3.4'] } }] },
    ],
  };
  assert.equal(decide(principalAndRemote, request({ sourcePrincipal: OTHER })).allowed, false);
  assert.equal(decide(principalAndRemote, request()).allowed, true, 'principals still narrow it');
});

test('CUSTOM (external authorizer): a DENY of what its rules match', () => {
  const spec = {
    action: 'CUSTOM',
    provider: { name: 'ext-authz' },
    rules: [{ to: [{ operation: { paths: ['/headers'] } }] }],
  };
  assert.equal(decide(spec, request()).allowed, false);
  assert.equal(decide(spec, request({ path: '/ip' })).allowed, true);
});

test("no stand-in for a policy with targetRefs (Istio's sidecars ignore it) or with an invalid field", () => {
  const dryRun = parsePolicyObject(
    'security.istio.io/v1',
    'AuthorizationPolicy',
    {
      metadata: { name: 'p', namespace: 'foo', annotations: { 'istio.io/dry-run': 'true' } },
      spec: { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] },
    },
    'api',
  );
  assert.equal(
    failClosedPolicy(dryRun.document, dryRun.diagnostics),
    undefined,
    'a dry run is never enforced',
  );
  for (const spec of [
    { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], action: 'DENY', rules: [{}] },
    { action: 'DENY', rules: [{ from: [{ source: { requestPrincipals: ['*'], principles: ['x'] } }] }] },
  ]) {
    const parsed = parsePolicyObject(
      'security.istio.io/v1',
      'AuthorizationPolicy',
      { metadata: { name: 'p', namespace: 'foo' }, spec },
      'api',
    );
    assert.equal(failClosedPolicy(parsed.document, parsed.diagnostics), undefined);
  }
});

test('an ALLOW Mutual cannot read allows nothing in its place; a DENY, AUDIT or one with targetRefs gets no stand-in', () => {
  const parse = (spec: object, metadata: object = {}) =>
    parsePolicyObject(
      'security.istio.io/v1',
      'AuthorizationPolicy',
      { metadata: { name: 'p', namespace: 'foo', ...metadata }, spec },
      'api',
    );
  // A misspelt key and a port Mutual refuses: the policy is invalid, not merely unsupported.
  for (const rules of [[{ to: [{ operation: { ports: ['0'] } }] }], [{ form: [{}] }]]) {
    const parsed = parse({ selector: { matchLabels: { app: 'httpbin' } }, rules });
    assert.equal(parsed.resources.length, 0);
    assert.equal(failClosedPolicy(parsed.document, parsed.diagnostics), undefined);
    const standIn = invalidPolicyStandIn(parsed.document, parsed.diagnostics);
    assert.ok(standIn);
    const reparsed = parsePolicyObject(
      'security.istio.io/v1',
      'AuthorizationPolicy',
      standIn.document,
      'api',
    );
    assert.deepEqual(
      reparsed.diagnostics.filter((d) => d.severity === 'error'),
      [],
    );
    const decide = (principal: string) =>
      compilePolicySet(reparsed.resources)
        .forWorkload({ namespace: 'foo', labels: { app: 'httpbin' } })
        .authorizeRequest(request({ sourcePrincipal: principal })).allowed;
    assert.equal(decide(WEB), false);
    assert.equal(decide(OTHER), false);
    const elsewhere = compilePolicySet(reparsed.resources)
      .forWorkload({ namespace: 'foo', labels: { app: 'other' } })
      .authorizeRequest(request());
    assert.equal(elsewhere.allowed, true, 'only the workloads it selects');
  }
  for (const [spec, metadata] of [
    [{ action: 'DENY', rules: [{ to: [{ operation: { ports: ['0'] } }] }] }, {}],
    [{ action: 'AUDIT', rules: [{ to: [{ operation: { ports: ['0'] } }] }] }, {}],
    [{ targetRefs: [{ kind: 'Service', group: '', name: 'web' }], rules: [{ form: [{}] }] }, {}],
    [{ rules: [{ form: [{}] }] }, { annotations: { 'istio.io/dry-run': 'true' } }],
  ] as const) {
    const parsed = parse(spec, metadata);
    assert.equal(invalidPolicyStandIn(parsed.document, parsed.diagnostics), undefined, JSON.stringify(spec));
  }
});
