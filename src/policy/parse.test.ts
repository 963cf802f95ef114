import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPolicySet } from './check.ts';
import { parsePolicyText } from './parse.ts';
import { ap, pa, ROOT } from './test-fixtures.ts';

/** `line:column code message-fragment` for every diagnostic of one severity. */
function found(yaml: string, severity: 'error' | 'warning' = 'error'): string[] {
  return parsePolicyText(yaml, 'p.yaml', { rootNamespace: ROOT })
    .diagnostics.filter((diagnostic) => diagnostic.severity === severity)
    .map((diagnostic) => `${diagnostic.line}:${diagnostic.column} ${diagnostic.code} ${diagnostic.message}`);
}

interface ErrorCase {
  name: string;
  yaml: string;
  /** Expected `line:column code` and a fragment of the message, one per problem. */
  expect: readonly [string, RegExp][];
}

const errorCases: ErrorCase[] = [
  {
    name: 'YAML syntax error with its position',
    yaml: 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a\n',
    expect: [['4:1 MUTUAL_POLICY_YAML_INVALID', /Flow map .* must be sufficiently indented/]],
  },
  {
    name: 'unknown field names the field and where it is',
    yaml: 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\nspec:\n  mtls:\n    mode: STRICT\n    strict: true\n',
    expect: [
      ['8:5 MUTUAL_POLICY_INVALID', /spec\.mtls\.strict: unknown field "strict" \(allowed here: mode\)/],
    ],
  },
  {
    name: 'misspelt notPrincipals is refused, not ignored',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      notPrincipal: ["x/ns/a/sa/b"]'),
    expect: [['11:', /unknown field "notPrincipal"/]],
  },
  {
    name: 'bad mode lists the modes',
    yaml: pa('a', 'demo', 'mtls: {mode: STRICTER}'),
    expect: [['8:', /spec\.mtls\.mode: .*"UNSET"\|"DISABLE"\|"PERMISSIVE"\|"STRICT"/]],
  },
  {
    name: 'unknown apiVersion',
    yaml: 'apiVersion: security.istio.io/v2\nkind: PeerAuthentication\nmetadata:\n  name: a\n',
    expect: [['1:13', /apiVersion must be one of security\.istio\.io\/v1, /]],
  },
  {
    name: 'another kind',
    yaml: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n',
    expect: [['2:7', /kind "ConfigMap" is not a policy kind/]],
  },
  {
    name: 'missing metadata.name',
    yaml: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  namespace: demo\n',
    expect: [['4:', /metadata\.name: missing/]],
  },
  {
    name: 'action CUSTOM is refused with a clear error',
    yaml: ap('ext', 'demo', 'action: CUSTOM\nprovider:\n  name: opa\nrules:\n- {}'),
    expect: [['8:11 MUTUAL_POLICY_UNSUPPORTED', /action CUSTOM .* not supported/]],
  },
  {
    name: 'bad CIDR and bad port',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      ipBlocks: ["10.0.0.0/33"]\n  to:\n  - operation:\n      ports: ["http"]',
    ),
    // Schema errors first; the CIDR is checked once the schema holds.
    expect: [['14:17', /ports\[0\]: port must be a number/]],
  },
  {
    name: 'JWT fields and unknown condition keys',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      requestPrincipals: ["*"]\n  when:\n  - key: request.auth.claims[iss]\n    values: ["x"]\n  - key: source.user\n    values: ["x"]',
    ),
    expect: [
      ['11:9 MUTUAL_POLICY_UNSUPPORTED', /requestPrincipals is not supported/],
      ['13:', /condition key "request\.auth\.claims\[iss\]" is not supported/],
      ['15:', /unknown condition key "source\.user"/],
    ],
  },
  {
    // Istio's template, not a misplaced wildcard: one error, saying only that.
    name: 'an Istio path template is unsupported, not a "*" in the middle',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["/foo/{*}/bar", "/baz/{**}"]'),
    expect: [
      ['11:17 MUTUAL_POLICY_UNSUPPORTED', /path template "\/foo\/\{\*\}\/bar" is not supported/],
      ['11:33 MUTUAL_POLICY_UNSUPPORTED', /path template "\/baz\/\{\*\*\}" is not supported/],
    ],
  },
  {
    name: 'a condition without values',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: source.ip'),
    expect: [['10:', /needs "values" or "notValues"/]],
  },
  {
    name: 'second document of a file has the error, at its own line',
    yaml: `${pa('ok', 'demo', 'mtls: {mode: STRICT}')}---\n\n---\n${pa('bad', 'demo', 'mtls: {mode: 3}').slice(4)}`,
    expect: [['18:16', /spec\.mtls\.mode/]],
  },
  {
    name: 'an empty from or to list is refused, not read as "any"',
    yaml: ap('a', 'demo', 'rules:\n- from: []\n  to: []'),
    expect: [
      ['9:11 MUTUAL_POLICY_INVALID', /rules\[0\]\.from: `from` must not be empty/],
      ['10:9 MUTUAL_POLICY_INVALID', /rules\[0\]\.to: `to` must not be empty/],
    ],
  },
  {
    name: 'an empty source or operation is refused, not read as "any"',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source: {}\n  - source:\n      principals: []\n  to:\n  - operation:\n      paths: []',
    ),
    expect: [
      ['10:15 MUTUAL_POLICY_INVALID', /from\[0\]\.source: a source must set at least one field/],
      ['12:9 MUTUAL_POLICY_INVALID', /from\[1\]\.source: a source must set at least one field/],
      ['15:9 MUTUAL_POLICY_INVALID', /to\[0\]\.operation: an operation must set at least one field/],
    ],
  },
  {
    name: 'a DENY policy without rules is refused, as Istio refuses it',
    yaml: ap('d', 'demo', 'action: DENY'),
    expect: [['8:3 MUTUAL_POLICY_INVALID', /a DENY policy without rules never matches/]],
  },
  {
    name: 'portLevelMtls without a selector is refused, as Istio refuses it',
    yaml: pa('ns', 'demo', 'mtls: {mode: STRICT}\nportLevelMtls:\n  8080: {mode: DISABLE}'),
    expect: [['9:3 MUTUAL_POLICY_INVALID', /portLevelMtls needs a selector/]],
  },
  {
    name: 'an empty portLevelMtls is refused',
    yaml: pa('w', 'demo', 'selector:\n  matchLabels: {app: web}\nportLevelMtls: {}'),
    expect: [['10:3 MUTUAL_POLICY_INVALID', /portLevelMtls is empty/]],
  },
  {
    // Istio's validateWorkloadSelector: labels match exactly, so a wildcard would select nothing.
    name: 'a wildcard or an empty key in a selector is refused, as Istio refuses it',
    yaml:
      ap('a', 'demo', 'selector:\n  matchLabels: {app: "web*"}\nrules: [{}]') +
      pa('p', 'demo', 'selector:\n  matchLabels: {"": web, "tier*": x}\nmtls: {mode: STRICT}'),
    expect: [
      ['9:19 MUTUAL_POLICY_INVALID', /a wildcard is not supported in a selector \("app=web\*"\)/],
      ['19:19 MUTUAL_POLICY_INVALID', /an empty label key is not supported in a selector \("=web"\)/],
      ['19:28 MUTUAL_POLICY_INVALID', /a wildcard is not supported in a selector \("tier\*=x"\)/],
    ],
  },
  {
    name: 'a port of portLevelMtls outside 1–65535 says so (not "Invalid key in record")',
    yaml: pa(
      'w',
      'demo',
      'selector:\n  matchLabels: {app: web}\nportLevelMtls:\n  "0": {mode: DISABLE}\n  70000: {mode: DISABLE}',
    ),
    expect: [
      ['11:10 MUTUAL_POLICY_INVALID', /spec\.portLevelMtls\.0: port must be 1–65535/],
      ['12:12 MUTUAL_POLICY_INVALID', /spec\.portLevelMtls\.70000: port must be 1–65535/],
    ],
  },
  {
    // Istio: "`provider` must not be with non CUSTOM action" (not "CUSTOM is unsupported").
    name: 'provider beside an action other than CUSTOM is refused as invalid, naming the action',
    yaml: ap('audit', 'demo', 'action: AUDIT\nprovider:\n  name: my-custom-authz\nrules:\n- {}'),
    expect: [['10:5 MUTUAL_POLICY_INVALID', /only action CUSTOM uses; this policy's action is AUDIT/]],
  },
  {
    name: 'a key with no value (spec:) says so, not "expected object, received null"',
    yaml: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n  namespace: demo\nspec:\n',
    expect: [['6:', /spec: is empty \(a key with no value\); give it a value \(object\) or remove the key/]],
  },
  {
    name: 'bad creationTimestamp',
    yaml: pa('a', 'demo', 'mtls: {mode: STRICT}', 'yesterday'),
    expect: [['7:', /must be an RFC 3339 time/]],
  },
];

for (const c of errorCases) {
  test(`parse error: ${c.name}`, () => {
    const errors = found(c.yaml);
    assert.equal(errors.length, c.expect.length, errors.join('\n'));
    for (const [index, [position, message]] of c.expect.entries()) {
      assert.ok(errors[index]!.startsWith(position), `${errors[index]} should start with ${position}`);
      assert.match(errors[index]!, message);
    }
    const parsed = parsePolicyText(c.yaml, 'p.yaml');
    assert.ok(
      parsed.diagnostics.every((diagnostic) => diagnostic.file === 'p.yaml' && diagnostic.hint.length > 0),
    );
  });
}

test('parse: an unsupported condition key gets a hint for that key; CUSTOM no TCP warning', () => {
  const hints = (key: string) =>
    parsePolicyText(
      ap('a', 'demo', `action: DENY\nrules:\n- when:\n  - key: ${key}\n    values: ["x"]`),
      'p.yaml',
    )
      .diagnostics.filter((diagnostic) => diagnostic.severity === 'error')
      .map((diagnostic) => diagnostic.hint);
  assert.match(hints('request.auth.claims[iss]')[0]!, /no JWT authentication/);
  assert.match(hints('remote.ip')[0]!, /X-Forwarded-For: use source\.ip/);
  assert.match(hints('connection.sni')[0]!, /TLS server name/);
  assert.match(hints('destination.ip')[0]!, /destination\.port/);
  const custom = ap(
    'ext',
    'demo',
    'action: CUSTOM\nprovider:\n  name: opa\nrules:\n- to:\n  - operation:\n      paths: ["/x"]',
  );
  assert.deepEqual(found(custom, 'warning'), []);
});

test('parse: empty documents are skipped; defaults are filled in', () => {
  const yaml = `---\n---\n# only a comment\n---\napiVersion: security.mutual.dev/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n  labels: {team: x}\n`;
  const { resources, diagnostics } = parsePolicyText(yaml, 'p.yaml');
  assert.deepEqual(
    diagnostics.filter((d) => d.severity === 'error'),
    [],
  );
  assert.equal(resources.length, 1);
  const [policy] = resources;
  assert.equal(policy!.meta.id, 'default/a');
  assert.equal(policy!.kind === 'AuthorizationPolicy' && policy!.action, 'ALLOW');
  assert.deepEqual(policy!.meta.position, { file: 'p.yaml', line: 5, column: 1 });
});

test('parse: a document with errors is left out, the others kept', () => {
  const yaml = pa('ok', 'demo', 'mtls: {mode: STRICT}') + pa('bad', 'demo', 'mtls: {mode: NOPE}');
  const { resources } = parsePolicyText(yaml, 'p.yaml');
  assert.deepEqual(
    resources.map((r) => r.meta.id),
    ['demo/ok'],
  );
});

interface WarningCase {
  name: string;
  yaml: string;
  expect: readonly [string, RegExp][];
}

const warningCases: WarningCase[] = [
  {
    name: 'selector policy in the root namespace is ignored',
    yaml: pa('web', ROOT, 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}'),
    expect: [['9:5', /root-namespace-selector .*is ignored/]],
  },
  {
    name: 'a policy in istio-system is not mesh-wide in Mutual',
    yaml:
      ap('deny-all', 'istio-system', 'action: DENY\nrules:\n- {}') +
      pa('strict', 'istio-system', 'mtls: {mode: STRICT}'),
    expect: [
      ['6:14', /istio-root-namespace .*applies only to workloads in namespace istio-system/],
      ['16:14', /istio-root-namespace/],
    ],
  },
  {
    name: 'ALLOW with an empty spec denies everything',
    yaml: ap('deny-all', 'demo', '{}'),
    expect: [['8:3', /allow-nothing .*allows nothing/]],
  },
  {
    name: 'principal with spiffe://',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      principals: ["spiffe://cluster.local/ns/demo/sa/web"]',
    ),
    expect: [['11:22', /principal-not-istio-form .*starts with spiffe:\/\//]],
  },
  {
    name: 'principal that is not td/ns/NS/sa/SA',
    yaml: ap('a', 'demo', 'rules:\n- when:\n  - key: source.principal\n    values: ["web"]'),
    expect: [['11:', /principal-not-istio-form/]],
  },
  {
    name: 'DENY rule with HTTP fields is wider on TCP',
    yaml: ap('d', 'demo', 'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["POST"]'),
    expect: [['10:', /http-fields-ignored-on-tcp .*methods/]],
  },
  {
    name: 'ALLOW with notNamespaces lets plaintext in',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      notNamespaces: ["foo"]'),
    expect: [['11:', /allow-negative-mtls-field/]],
  },
  {
    // Istio warns "workload selector specified without labels": it selects the whole namespace.
    name: 'a selector without labels selects every workload in the namespace',
    yaml:
      ap('d', 'demo', 'selector: {matchLabels: {}}\naction: DENY\nrules:\n- {}') +
      pa('p', 'demo', 'selector: {}'),
    expect: [
      ['8:13', /selector-without-labels .*selects every workload in the namespace/],
      ['19:13', /selector-without-labels/],
    ],
  },
  {
    // A DENY of "get" would never deny: requests are GET, or refused.
    name: 'a method not in upper case never matches',
    yaml: ap(
      'd',
      'demo',
      'action: DENY\nrules:\n- to:\n  - operation:\n      methods: ["get", "POST"]\n      ports: ["80"]',
    ),
    expect: [
      ['12:19', /method-not-upper-case .*no request has the method "get"/],
      ['10:', /http-fields-ignored-on-tcp/],
    ],
  },
  {
    // Istio accepts these and matches the "*" literally (StringMatcherWithPrefix); refusing them
    // dropped the policy in a cluster, so an ALLOW that allowed little allowed everyone.
    name: 'a "*" in the middle, or at both ends, is read as Istio reads it, with a warning',
    yaml: ap('a', 'demo', 'rules:\n- to:\n  - operation:\n      paths: ["/a/*/b", "*mid*"]'),
    expect: [
      [
        '11:17',
        /wildcard-read-literally .*"\/a\/\*\/b" has a "\*" in the middle, which Istio matches as a literal "\*"/,
      ],
      ['11:27', /wildcard-read-literally .*"\*mid\*" is a suffix match of "mid\*"/],
    ],
  },
  {
    name: 'namespaces: a "*" in the middle is a wildcard, as in Istio: no warning',
    yaml: ap('a', 'demo', 'rules:\n- from:\n  - source:\n      namespaces: ["team-*-prod"]'),
    expect: [],
  },
  {
    name: 'a clean policy has no warnings',
    yaml: ap(
      'a',
      'demo',
      'rules:\n- from:\n  - source:\n      principals: ["cluster.local/ns/demo/sa/web", "*/sa/api"]',
    ),
    expect: [],
  },
];

for (const c of warningCases) {
  test(`parse warning: ${c.name}`, () => {
    assert.deepEqual(found(c.yaml), []);
    const warnings = found(c.yaml, 'warning');
    assert.equal(warnings.length, c.expect.length, warnings.join('\n'));
    for (const [index, [position, message]] of c.expect.entries()) {
      assert.ok(warnings[index]!.startsWith(position), `${warnings[index]} should start with ${position}`);
      assert.match(warnings[index]!, message);
    }
  });
}

test('check: several policies at one level name the winner', () => {
  const yaml =
    pa('older', 'demo', 'mtls: {mode: STRICT}', '2026-01-01T00:00:00Z') +
    pa('newer', 'demo', 'mtls: {mode: DISABLE}', '2026-02-01T00:00:00Z') +
    pa('w1', 'demo', 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}', '2026-01-01T00:00:00Z') +
    pa(
      'w2',
      'demo',
      'selector:\n  matchLabels: {tier: front}\nmtls: {mode: DISABLE}',
      '2026-01-02T00:00:00Z',
    ) +
    pa(
      'w3',
      'demo',
      'selector:\n  matchLabels: {app: api, tier: back}\nmtls: {mode: DISABLE}',
      '2026-01-03T00:00:00Z',
    );
  const warnings = checkPolicySet(parsePolicyText(yaml, 'p.yaml').resources).map(
    (w) => `${w.policy} ${w.code} ${w.message}`,
  );
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, /^demo\/newer several-at-one-level .*demo\/older is the oldest and wins/);
  assert.match(warnings[1]!, /^demo\/w2 several-at-one-level .*get only demo\/w1/);
});

test('check: with a workload list, selectors and namespaces that match nothing', () => {
  const yaml =
    pa('web', 'default', 'selector:\n  matchLabels: {app: web}\nmtls: {mode: STRICT}') +
    ap('typo', 'demo', 'selector:\n  matchLabels: {app: wbe}\nrules:\n- {}') +
    ap('ok', 'demo', 'selector:\n  matchLabels: {app: web}\nrules:\n- {}') +
    ap('mesh', ROOT, 'selector:\n  matchLabels: {app: nothing}\naction: DENY\nrules:\n- {}');
  const resources = parsePolicyText(yaml, 'p.yaml').resources;
  const workloads = [{ namespace: 'demo', labels: { app: 'web' } }];
  const warnings = checkPolicySet(resources, { workloads }).map((w) => `${w.policy} ${w.code}`);
  assert.deepEqual(warnings, [
    'default/web namespace-has-no-workloads',
    'demo/typo selector-matches-nothing',
    `${ROOT}/mesh selector-matches-nothing`,
  ]);
  assert.deepEqual(checkPolicySet(resources), [], 'without workloads there is nothing to compare with');
});
