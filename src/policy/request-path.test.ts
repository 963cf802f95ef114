import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  authorityProblem,
  hostProblem,
  methodProblem,
  normalizePath,
  otherPathReading,
  parseRequestTarget,
} from './request-path.ts';

// [request target, normalised path, query] — Istio's "Authorization Policy Normalization" table
// (BASE) plus merged slashes.
const targets: [string, string, string][] = [
  ['/', '/', ''],
  ['/a/b', '/a/b', ''],
  ['/a/b/', '/a/b/', ''],
  ['/a//b///c', '/a/b/c', ''],
  ['//a', '/a', ''],
  ['/a/./b/.', '/a/b/', ''],
  ['/a/b/../c', '/a/c', ''],
  ['/a/b/..', '/a/', ''],
  ['/../../a', '/a', ''],
  ['/..', '/', ''],
  ['/a\\b\\..\\c', '/a/c', ''],
  ['/some%2fdata/%61%62%63', '/some%2fdata/abc', ''],
  ['/%2e%2E/a/.%2e/b', '/b', ''],
  ['/%7e%2D%5f%30%41', '/~-_0A', ''],
  ['/%25%32%65', '/%252e', ''],
  ['/%252e%252e/a', '/%252e%252e/a', ''],
  ['/a%zz/%4', '/a%zz/%4', ''],
  ['/a?b=/../c', '/a', '?b=/../c'],
  ['/a?', '/a', '?'],
  ['/a#frag', '/a', ''],
  ['/a/x#/../../b?c', '/a/x', ''],
  ['/a?q#f', '/a', '?q'],
  ['http://Host.Example:8080/a/../b?q', '/b', '?q'],
  ['HTTP://host', '/', ''],
  ['https://host?q', '/', '?q'],
];

for (const [target, path, query] of targets) {
  test(`parseRequestTarget: ${target} → ${path}${query}`, () => {
    const parsed = parseRequestTarget(target);
    assert.ok(parsed.isValid, parsed.isValid ? '' : parsed.problem);
    assert.equal(parsed.path, path);
    assert.equal(parsed.query, query);
    // Normalising twice changes nothing: the app, and a second proxy, see the same path.
    assert.equal(normalizePath(parsed.path), parsed.path);
  });
}

test('parseRequestTarget: an absolute-form target gives its authority, lower-cased', () => {
  const parsed = parseRequestTarget('http://Emoji.Demo:80/x');
  assert.ok(parsed.isValid);
  assert.equal(parsed.authority, 'emoji.demo:80');
  assert.equal((parseRequestTarget('/x') as { authority?: string }).authority, undefined);
});

const refused: [string, RegExp][] = [
  ['*', /asterisk-form/],
  ['admin/x', /not a path: it must start with "\/"/],
  ['', /not a path/],
  ['/a%00b', /%00/],
  ['/a b', /control character or a space/],
  ['/a\x7f', /control character/],
  ['http:///x', /names no host/],
  ['http://user@host/x', /user info/],
];

for (const [target, problem] of refused) {
  test(`parseRequestTarget: ${JSON.stringify(target)} is refused`, () => {
    const parsed = parseRequestTarget(target);
    assert.equal(parsed.isValid, false);
    assert.match((parsed as { problem: string }).problem, problem);
  });
}

const readings: [string, string | undefined][] = [
  ['/admin/x', undefined],
  ['/admin%2Fx', '/admin/x'],
  ['/public/..%2fadmin', '/admin'],
  ['/public/..%5Cadmin', '/admin'],
  ['/public/..;/admin', '/admin'],
  ['/admin;jsessionid=1/x', '/admin/x'],
  ['/a;b', '/a'],
  ['/files/a%2Fb', '/files/a/b'],
];

for (const [path, reading] of readings) {
  test(`otherPathReading: ${path} → ${reading}`, () => {
    assert.equal(otherPathReading(path), reading);
  });
}

test('methodProblem: a method is an upper-case token, as the sidecar reads it (explain refuses the rest)', () => {
  for (const method of ['GET', 'HEAD', 'PROPFIND', 'M-SEARCH'])
    assert.equal(methodProblem(method), undefined);
  assert.match(methodProblem('get') ?? '', /not in upper case/);
  assert.match(methodProblem('Get') ?? '', /not in upper case/);
  assert.match(methodProblem('G T') ?? '', /not an HTTP token/);
  assert.match(methodProblem('') ?? '', /not an HTTP token/);
});

test('hostProblem: one host[:port], never a list or a path', () => {
  for (const host of ['web.demo', 'web.demo:8080', 'WEB.demo.', '[::1]:80', '127.0.0.1', ''])
    assert.equal(hostProblem(host), undefined, host);
  for (const host of ['web.demo, admin.internal', 'web.demo/admin', 'web demo', 'a:b:c'])
    assert.match(hostProblem(host) ?? '', /not a host name/, host);
});

test('authorityProblem: an absolute-form target and its Host name one host', () => {
  assert.equal(authorityProblem(undefined, 'anything'), undefined);
  assert.equal(authorityProblem('admin.internal', 'ADMIN.Internal'), undefined);
  assert.match(authorityProblem('admin.internal', 'web.demo') ?? '', /names host "admin.internal"/);
  assert.match(authorityProblem('admin.internal', undefined) ?? '', /Host header says ""/);
});
