import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyText } from './parse.ts';
import { compileServiceAccounts, matchesServiceAccount, serviceAccountProblem } from './service-account.ts';
import { ap, ROOT } from './test-fixtures.ts';

/**
 * Istio's own form (pilot/pkg/security/authz/model/generator.go, serviceAccountRegex), with the
 * namespace and name taken literally (regexp.QuoteMeta), matched in full as Envoy's safe_regex is.
 */
function istioServiceAccountRegex(defaultNamespace: string, value: string): RegExp {
  const slash = value.indexOf('/');
  const [ns, sa] = slash < 0 ? [defaultNamespace, value] : [value.slice(0, slash), value.slice(slash + 1)];
  const quote = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^spiffe://.+/ns/${quote(ns)}/(.+/|)sa/${quote(sa)}(/.+)?$`);
}

const principals = [
  'spiffe://cluster.local/ns/demo/sa/web',
  'spiffe://example.org/ns/demo/sa/web',
  'spiffe://cluster.local/ns/demo/sa/web2',
  'spiffe://cluster.local/ns/demo/sa/we',
  'spiffe://cluster.local/ns/demo/sa/web/',
  'spiffe://cluster.local/ns/demo/sa/web/x',
  'spiffe://cluster.local/ns/demo/x/sa/web',
  'spiffe://cluster.local/ns/demo//sa/web',
  'spiffe://cluster.local/ns/demo/xsa/web',
  'spiffe://cluster.local/ns/demo/x/y/sa/web/z/w',
  'spiffe://cluster.local/ns/demo2/sa/web',
  'spiffe://cluster.local/ns/other/sa/web',
  'spiffe://cluster.local/ns/other/sa/x/ns/demo/sa/web',
  'spiffe://cluster.local/ns/demo/sa/x/sa/web',
  'spiffe://cluster.local/ns/demo/sa/web/sa/web',
  'spiffe://td/x/ns/demo/sa/web',
  'spiffe:///ns/demo/sa/web',
  'spiffe://cluster.local/ns/demo',
  'spiffe://cluster.local/ns/demo/sa/',
  'spiffe://cluster.local/ns/my.ns/sa/my.sa',
  'spiffe://cluster.local/ns/myxns/sa/myxsa',
  'spiffe://cluster.local/ns/sa/sa/sa',
];
const values = ['demo/web', 'web', 'other/web', 'my.ns/my.sa', 'sa/sa', 'demo/we'];

for (const value of values) {
  test(`serviceAccounts: "${value}" (policy in demo) matches exactly the principals Istio's regex does`, () => {
    const compiled = compileServiceAccounts([value], 'demo');
    for (const principal of principals) {
      const expected = istioServiceAccountRegex('demo', value).test(principal);
      const actual = matchesServiceAccount(compiled, principal.slice('spiffe://'.length));
      assert.equal(actual, expected, `${principal}: Istio says ${expected}`);
    }
  });
}

test('serviceAccounts: a list matches when any value does; a bare name is in the policy namespace', () => {
  const compiled = compileServiceAccounts(['a/x', 'y'], 'b');
  assert.equal(matchesServiceAccount(compiled, 'td/ns/a/sa/x'), true);
  assert.equal(matchesServiceAccount(compiled, 'td/ns/b/sa/y'), true);
  assert.equal(matchesServiceAccount(compiled, 'td/ns/a/sa/y'), false);
  assert.equal(matchesServiceAccount(compiled, 'td/ns/b/sa/x'), false);
});

test("serviceAccountProblem: what Istio's CheckServiceAccount refuses, and what it accepts", () => {
  for (const ok of ['demo/web', 'web', 'a.b/c.d', 'x'.repeat(320)]) {
    assert.equal(serviceAccountProblem(ok), undefined, ok);
  }
  const refused: [string, RegExp][] = [
    ['*', /no wildcards/],
    ['demo/*', /no wildcards/],
    ['*/web', /no wildcards/],
    ['web*', /no wildcards/],
    ['a/b/c', /has 2 "\/"/],
    ['cluster.local/ns/demo/sa/web', /has 4 "\/"/],
    ['/web', /empty namespace/],
    ['demo/', /empty service account/],
    ['/', /empty namespace/],
    ['x'.repeat(321), /321 characters long; at most 320/],
  ];
  for (const [value, message] of refused) assert.match(serviceAccountProblem(value) ?? '', message, value);
});

/** `line:column code message` of each diagnostic of one severity. */
function diagnostics(yaml: string, severity: 'error' | 'warning' = 'error'): string[] {
  return parsePolicyText(yaml, 'p.yaml', { rootNamespace: ROOT })
    .diagnostics.filter((diagnostic) => diagnostic.severity === severity)
    .map((diagnostic) => `${diagnostic.line}:${diagnostic.column} ${diagnostic.code} ${diagnostic.message}`);
}

const source = (fields: string) => `rules:\n- from:\n  - source:\n      ${fields}`;

/** Hostile and odd `serviceAccounts` input: each refused as Istio refuses it, at its own line. */
const refusedCases: [string, string, readonly RegExp[]][] = [
  [
    'an empty list alone',
    'serviceAccounts: []',
    [/^11:\d+ MUTUAL_POLICY_INVALID .*a source must set at least one field/],
  ],
  [
    'an empty value',
    'serviceAccounts: [""]',
    [/^11:\d+ MUTUAL_POLICY_INVALID .*serviceAccounts\[0\]: must not be empty/],
  ],
  [
    'a string, not a list',
    'serviceAccounts: demo/web',
    [/^11:\d+ MUTUAL_POLICY_INVALID .*serviceAccounts: .*expected array/],
  ],
  [
    'a number',
    'serviceAccounts: [42]',
    [/^11:\d+ MUTUAL_POLICY_INVALID .*serviceAccounts\[0\]: .*expected string/],
  ],
  [
    'a full principal',
    'serviceAccounts: ["cluster.local/ns/demo/sa/web"]',
    [/^11:\d+ MUTUAL_POLICY_INVALID .*has 4 "\/"/],
  ],
  ['a wildcard', 'serviceAccounts: ["*"]', [/no wildcards/]],
  [
    'a namespace wildcard',
    'notServiceAccounts: ["demo/*"]',
    [/notServiceAccounts\[0\]: "demo\/\*" has a "\*"/],
  ],
  ['a prefix', 'serviceAccounts: ["demo/web*"]', [/no wildcards/]],
  [
    'an empty namespace or name',
    'serviceAccounts: ["/web", "demo/"]',
    [/"\/web" has an empty namespace/, /"demo\/" has an empty service account/],
  ],
  [
    '17 values',
    `serviceAccounts: [${Array.from({ length: 17 }, (_, i) => `"demo/sa${i}"`).join(', ')}]`,
    [/17 service accounts; Istio allows at most 16/],
  ],
  ['a 321-character value', `serviceAccounts: ["demo/${'x'.repeat(316)}"]`, [/321 characters long/]],
  [
    'with principals',
    'serviceAccounts: ["demo/web"]\n      principals: ["cluster.local/ns/demo/sa/web"]',
    [/^11:9 .*serviceAccounts cannot be set with principals/],
  ],
  [
    'not- with notNamespaces',
    'notServiceAccounts: ["demo/web"]\n      notNamespaces: ["x"]',
    [/notServiceAccounts cannot be set with notNamespaces/],
  ],
  [
    'an empty list beside namespaces is fine, a filled one is not',
    'serviceAccounts: []\n      namespaces: ["x"]\n      notServiceAccounts: ["a/b"]',
    [/notServiceAccounts cannot be set with namespaces/],
  ],
];

for (const [name, fields, expected] of refusedCases) {
  test(`parse serviceAccounts, refused: ${name}`, () => {
    const errors = diagnostics(ap('a', 'demo', source(fields)));
    assert.equal(errors.length, expected.length, errors.join('\n'));
    for (const [index, pattern] of expected.entries()) assert.match(errors[index]!, pattern);
    const parsed = parsePolicyText(ap('a', 'demo', source(fields)), 'p.yaml');
    assert.equal(parsed.resources.length, 0, 'a refused policy is left out');
    assert.ok(
      parsed.diagnostics.every((diagnostic) => diagnostic.policy === 'demo/a' && diagnostic.hint !== ''),
    );
  });
}

test('parse serviceAccounts: what Istio accepts is accepted, with no warning', () => {
  for (const fields of [
    'serviceAccounts: ["demo/web", "web", "other/bot"]',
    'notServiceAccounts: ["demo/web"]\n      principals: []\n      ipBlocks: ["10.0.0.0/8"]',
    'serviceAccounts: ["demo/web"]\n      ipBlocks: ["10.0.0.0/8"]',
    `serviceAccounts: [${Array.from({ length: 16 }, (_, i) => `"demo/${String(i).padStart(315, 'x')}"`).join(', ')}]`,
  ]) {
    const yaml = ap('a', 'demo', `action: DENY\n${source(fields)}`);
    assert.deepEqual(diagnostics(yaml), [], fields);
    assert.deepEqual(diagnostics(yaml, 'warning'), [], fields);
  }
});

test('parse source.serviceAccount conditions: checked as serviceAccounts are', () => {
  const when = (values: string) => `rules:\n- when:\n  - key: source.serviceAccount\n    ${values}`;
  assert.deepEqual(diagnostics(ap('a', 'demo', when('values: ["demo/web", "web"]'))), []);
  assert.match(diagnostics(ap('a', 'demo', when('notValues: ["a/b/c"]'))).join('\n'), /^11:.*has 2 "\/"/);
  assert.match(diagnostics(ap('a', 'demo', when('values: ["demo/*"]'))).join('\n'), /no wildcards/);
});

test('parse serviceAccounts warnings: a bare name in the root namespace, and not- forms in an ALLOW', () => {
  const warnings = diagnostics(ap('a', ROOT, source('notServiceAccounts: ["web", "demo/x"]')), 'warning');
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, /allow-negative-mtls-field .*notServiceAccounts.*plaintext/);
  assert.match(
    warnings[1]!,
    /service-account-in-root-namespace .*"web" without a namespace means mutual-system\/web/,
  );
  const hint = parsePolicyText(ap('a', ROOT, source('notServiceAccounts: ["demo/x"]')), 'p.yaml', {
    rootNamespace: ROOT,
  }).diagnostics[0]!.hint;
  assert.match(
    hint,
    /source\.principal/,
    'the hint must not suggest principals, which Istio refuses beside serviceAccounts',
  );
});
