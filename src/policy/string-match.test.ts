import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compileNamespacePatterns,
  compilePatterns,
  matchesHeaderElements,
  matchesNamespace,
  matchesPatterns,
} from './string-match.ts';

/** Istio's own form (pilot/pkg/security/authz/model/generator.go): `.*\/ns/<v, * as .*>/.*` over the URI SAN. */
function istioNamespaceRegex(value: string): RegExp {
  return new RegExp(`^.*/ns/${value.replaceAll('*', '.*')}/.*$`);
}

const principals = [
  'spiffe://cluster.local/ns/prod/sa/api',
  'spiffe://cluster.local/ns/production/sa/api',
  'spiffe://cluster.local/ns/eu-prod/sa/api',
  'spiffe://cluster.local/ns/prod',
  'spiffe://cluster.local/ns/dev/sa/x/ns/prod/y',
  'spiffe://cluster.local/ns/dev/sa/prod',
  'spiffe://cluster.local/ns/dev/sa/eu-prod/x',
  'spiffe://cluster.local/workload/ns/prod/x',
  'spiffe://cluster.local/ns//sa/x',
  'spiffe://cluster.local/ns/',
  'spiffe://cluster.local/nsprod/sa/x',
  'spiffe://cluster.local/ns/pro/sa/x',
];
const patterns = ['prod', 'prod*', '*-prod', '*prod', '*', 'pro', 'p*d', '*ro*', 'de*/sa/p*'];

for (const pattern of patterns) {
  test(`namespaces: "${pattern}" matches exactly the principals Istio's regex does`, () => {
    const compiled = compileNamespacePatterns([pattern]);
    for (const principal of principals) {
      const expected = istioNamespaceRegex(pattern).test(principal);
      assert.equal(matchesNamespace(compiled, principal), expected, `${principal}: Istio says ${expected}`);
      assert.equal(matchesNamespace(compiled, principal.slice('spiffe://'.length)), expected, principal);
    }
  });
}

test('header values: "*" is a presence check (an empty value matches), elsewhere it needs a value', () => {
  assert.equal(matchesPatterns(compilePatterns(['*'], false, true), ''), true);
  assert.equal(matchesPatterns(compilePatterns(['*']), ''), false);
  assert.equal(matchesPatterns(compilePatterns(['*']), 'x'), true);
  assert.equal(matchesPatterns(compilePatterns(['a*'], false, true), ''), false);
});

/** Istio's list reading (authz/matcher HeaderMatcherWithRegex, its request.experimental.inline.headers), with QuoteMeta. */
function istioHeaderRegex(value: string): RegExp {
  const quote = (text: string) => text.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
  const regex = value.startsWith('*')
    ? `.*${quote(value.slice(1))}`
    : value.endsWith('*')
      ? `${quote(value.slice(0, -1))}.*`
      : quote(value);
  return new RegExp(`^(?:^${regex}$|^${regex},.*|.*,${regex},.*|.*,${regex}$)$`);
}

const headerValues = [
  'evil',
  'good,evil',
  'evil,good',
  'a,evil,b',
  'good, evil',
  'evilx',
  'xevil',
  'x,evil-ish,y',
  'a.b,c',
  'axb,c',
  'ab,c',
  ',',
  '',
  'admin-1,guest',
  'me-root,x',
  'x,me-root',
];
const headerPatterns = ['evil', 'evil*', '*evil', 'a.b', 'admin-*', '*-root', 'ab,c', 'ev', '*,'];

for (const pattern of headerPatterns) {
  test(`header values: "${pattern}" matches exactly the values Istio's regex does`, () => {
    const compiled = compilePatterns([pattern], false, true);
    for (const value of headerValues) {
      const expected = istioHeaderRegex(pattern).test(value);
      assert.equal(matchesHeaderElements(compiled, value), expected, `"${value}": Istio says ${expected}`);
    }
  });
}
