import assert from 'node:assert/strict';
import test from 'node:test';
import fastJsonPatch from 'fast-json-patch';
import { diffJsonPatch, escapePointerToken, toPointer } from './json-patch.ts';

const { applyPatch, deepClone } = fastJsonPatch;

test('JSON Pointer tokens escape ~ before / (RFC 6901)', () => {
  assert.equal(escapePointerToken('mutual.dev/inject'), 'mutual.dev~1inject');
  assert.equal(escapePointerToken('a~/b'), 'a~0~1b');
  assert.equal(escapePointerToken('~1'), '~01');
  assert.equal(
    toPointer(['metadata', 'annotations', 'config.mutual.dev/opaque-ports']),
    '/metadata/annotations/config.mutual.dev~1opaque-ports',
  );
  assert.equal(toPointer([]), '');
});

const cases: { name: string; before: unknown; after: unknown; ops?: number }[] = [
  { name: 'equal values', before: { a: [1, { b: 2 }] }, after: { a: [1, { b: 2 }] }, ops: 0 },
  { name: 'new key with a slash', before: { metadata: {} }, after: { metadata: { 'x/y': 'z' } }, ops: 1 },
  {
    name: 'new map where there was none',
    before: { metadata: { name: 'p' } },
    after: { metadata: { name: 'p', annotations: { 'a~b/c': '1' } } },
    ops: 1,
  },
  { name: 'changed scalar', before: { a: 1 }, after: { a: 2 }, ops: 1 },
  { name: 'removed key', before: { a: 1, b: 2 }, after: { a: 1 }, ops: 1 },
  {
    name: 'items prepended keep their order',
    before: { l: ['c', 'd'] },
    after: { l: ['a', 'b', 'c', 'd'] },
    ops: 2,
  },
  { name: 'items appended', before: { l: [{ n: 1 }] }, after: { l: [{ n: 1 }, { n: 2 }, { n: 3 }] }, ops: 2 },
  { name: 'array into empty array', before: { l: [] }, after: { l: [1] }, ops: 1 },
  { name: 'reordered array is replaced whole', before: { l: [1, 2] }, after: { l: [2, 1, 3] }, ops: 1 },
  { name: 'shorter array is replaced whole', before: { l: [1, 2] }, after: { l: [1] }, ops: 1 },
  { name: 'null becomes a map', before: { annotations: null }, after: { annotations: { k: 'v' } }, ops: 1 },
  { name: 'type change object → array', before: { a: { b: 1 } }, after: { a: [1] }, ops: 1 },
  { name: 'nested change inside an array item', before: { l: [{ a: 1 }] }, after: { l: [{ a: 2 }] }, ops: 1 },
  {
    name: 'same-length array: only the changed field of the changed item',
    before: { l: [{ n: 'a', p: { port: 'http' } }, { n: 'b' }] },
    after: { l: [{ n: 'a', p: { port: 4191 } }, { n: 'b' }] },
    ops: 1,
  },
  { name: 'same-length array of scalars', before: { l: [1, 2, 3] }, after: { l: [1, 5, 3] }, ops: 1 },
  {
    name: 'named items prepended while one already there changed: inserts, then that change only',
    before: { l: [{ name: 'migrate' }, { name: 'log', probe: { port: 'metrics' } }] },
    after: {
      l: [
        { name: 'mutual-init' },
        { name: 'mutual-proxy' },
        { name: 'migrate' },
        { name: 'log', probe: { port: 4191 } },
      ],
    },
    ops: 3,
  },
  {
    name: 'named items appended while one already there changed',
    before: { l: [{ name: 'a', v: 1 }] },
    after: { l: [{ name: 'a', v: 2 }, { name: 'b' }] },
    ops: 2,
  },
];

for (const c of cases) {
  test(`diffJsonPatch: ${c.name} — applied with fast-json-patch, gives the target`, () => {
    const patch = diffJsonPatch(c.before, c.after);
    if (c.ops !== undefined) assert.equal(patch.length, c.ops, JSON.stringify(patch));
    // validate=true: fast-json-patch refuses malformed operations and paths that do not exist.
    const result = applyPatch(deepClone(c.before), deepClone(patch), true, false).newDocument;
    assert.deepEqual(result, c.after);
  });
}

test('diffJsonPatch: a probe rewritten in one container of two patches that probe, not the containers list', () => {
  const before = {
    containers: [{ name: 'web', readinessProbe: { httpGet: { port: 'http' } } }, { name: 'log' }],
  };
  const after = {
    containers: [{ name: 'web', readinessProbe: { httpGet: { port: 4191 } } }, { name: 'log' }],
  };
  assert.deepEqual(diffJsonPatch(before, after), [
    { op: 'replace', path: '/containers/0/readinessProbe/httpGet/port', value: 4191 },
  ]);
});
